package storage

import (
	"errors"
	"log/slog"
	"runtime"
	"time"

	"github.com/streambus/streambus/internal/vfs"
)

// ManagerOptions configure a Manager. Zero fields take the defaults listed;
// call EnsureDefaults (OpenManager does) and Validate.
type ManagerOptions struct {
	// Dir is the data directory holding one directory per partition.
	// Required.
	Dir string
	// FS is the filesystem. Default vfs.OS.
	FS vfs.FS
	// Logger receives recovery and background-work messages. Default: a
	// logger that discards everything.
	Logger *slog.Logger
	// Now is the clock for retention, compaction and segment.ms. Default
	// time.Now.
	Now func() time.Time
	// FlushOnAck selects the durable mode (the broker's default,
	// log.flush.mode=ack): every append starts a group-commit round of the
	// journal at once, and the high watermark is the durable offset. False
	// selects interval mode: a journal round every FlushInterval (or when
	// Sync asks), and the high watermark is the log end offset. The zero
	// value is interval mode.
	FlushOnAck bool
	// FlushInterval is the journal round period in interval mode. Default
	// 1s.
	FlushInterval time.Duration
	// CheckpointInterval is how often the segments written since the last
	// checkpoint are fsynced and the recovery points written, so that the
	// journal files before them can go. Default 5s.
	CheckpointInterval time.Duration
	// CheckpointBytes starts a checkpoint early when the journal holds
	// this much. Default 256 MiB.
	CheckpointBytes int64
	// JournalFileSize is the size past which the journal starts a new
	// file. Default 64 MiB.
	JournalFileSize int64
	// CanRecover, if set, tells the Manager whether to try recovering a
	// failed journal or log (Recover), which it does every second until
	// it succeeds: e.g. once the disk has free space again. Nil means
	// always try.
	CanRecover func() bool
	// RetentionCheckInterval is how often Run applies retention and
	// segment.ms rolling (log.retention.check.interval.ms). Default 5m.
	RetentionCheckInterval time.Duration
	// ConfigFor returns the configuration of a partition found on disk at
	// open. Nil, or false for a partition, means DefaultLogConfig.
	ConfigFor func(PartitionID) (LogConfig, bool)
	// OnFsync, if set, observes the duration of every journal fdatasync
	// (one per group-commit round).
	OnFsync func(time.Duration)
	// MaxDecompressedBytes bounds the decompressed size of one batch when
	// the log looks inside batches (compaction, timestamp lookups).
	// Default 64 MiB.
	MaxDecompressedBytes int
	// RecoveryParallelism bounds how many partitions OpenManager recovers
	// at once. Default 2×GOMAXPROCS.
	RecoveryParallelism int
	// CompactionInterval is how often Run looks for compactable logs
	// (log.cleaner.backoff.ms). Default 15s.
	CompactionInterval time.Duration
	// CleanerMapBytes bounds the memory of the cleaner's key→offset map
	// for one log pass (log.cleaner.dedupe.buffer.size); a pass cleans as
	// many segments as fit. Default 128 MiB.
	CleanerMapBytes int64
	// ProducerIDExpiration is producer.id.expiration.ms: idempotent
	// producers idle this long are forgotten by the retention pass.
	// Default 24h.
	ProducerIDExpiration time.Duration
	// MaxOpenFiles bounds the segment and index files the Manager keeps
	// open (log.max.open.files), like RocksDB's max_open_files: files are
	// opened on use and the least recently used are closed beyond it, so
	// idle partitions hold none. Files in use (an append, an fsync, a
	// Slice not yet released) are never closed, so the bound is exceeded
	// only while more files than that are in use at once. Keep it well
	// below the process's descriptor limit (RLIMIT_NOFILE), which
	// connections and transient opens (checkpoints, index loads) share.
	// Default 10,000.
	MaxOpenFiles int
}

// EnsureDefaults fills zero fields with their defaults.
func (o *ManagerOptions) EnsureDefaults() {
	if o.FS == nil {
		o.FS = vfs.OS
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = time.Second
	}
	if o.RetentionCheckInterval == 0 {
		o.RetentionCheckInterval = 5 * time.Minute
	}
	if o.MaxDecompressedBytes == 0 {
		o.MaxDecompressedBytes = 64 << 20
	}
	if o.RecoveryParallelism == 0 {
		o.RecoveryParallelism = 2 * runtime.GOMAXPROCS(0)
	}
	if o.CompactionInterval == 0 {
		o.CompactionInterval = 15 * time.Second
	}
	if o.ProducerIDExpiration == 0 {
		o.ProducerIDExpiration = 24 * time.Hour
	}
	if o.CleanerMapBytes == 0 {
		o.CleanerMapBytes = 128 << 20
	}
	if o.MaxOpenFiles == 0 {
		o.MaxOpenFiles = 10000
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = 5 * time.Second
	}
	if o.CheckpointBytes == 0 {
		o.CheckpointBytes = 256 << 20
	}
	if o.JournalFileSize == 0 {
		o.JournalFileSize = 64 << 20
	}
}

// Validate reports invalid options (after EnsureDefaults).
func (o *ManagerOptions) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("storage: ManagerOptions.Dir is required"))
	}
	if o.FlushInterval < 0 || o.RetentionCheckInterval < 0 || o.CompactionInterval < 0 || o.CheckpointInterval < 0 {
		errs = append(errs, errors.New("storage: intervals must not be negative"))
	}
	if o.MaxDecompressedBytes < 0 || o.RecoveryParallelism < 0 || o.CleanerMapBytes < 0 || o.ProducerIDExpiration < 0 || o.MaxOpenFiles < 0 ||
		o.CheckpointBytes < 0 || o.JournalFileSize < 0 {
		errs = append(errs, errors.New("storage: sizes must not be negative"))
	}
	return errors.Join(errs...)
}

// validateLogConfig rejects configurations the log cannot run with.
func validateLogConfig(c LogConfig) error {
	var errs []error
	if c.SegmentBytes < 14 {
		errs = append(errs, errors.New("segment.bytes must be at least 14"))
	}
	if c.SegmentMs < 1 {
		errs = append(errs, errors.New("segment.ms must be positive"))
	}
	if c.IndexIntervalBytes < 0 {
		errs = append(errs, errors.New("index.interval.bytes must not be negative"))
	}
	if c.DeleteRetentionMs < 0 || c.MinCompactionLagMs < 0 {
		errs = append(errs, errors.New("delete.retention.ms and min.compaction.lag.ms must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return errors.Join(errors.New("storage: invalid log config"), err)
	}
	return nil
}
