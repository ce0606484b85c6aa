package storage

import (
	"errors"
	"os"
)

// PartitionID names one partition log.
type PartitionID struct {
	Topic     string
	Partition int32
}

// LogConfig is the per-partition configuration, resolved from topic configs
// (Kafka names in comments) by internal/topicconfig.
type LogConfig struct {
	SegmentBytes       int64 // segment.bytes, default 1073741824
	SegmentMs          int64 // segment.ms, default 604800000
	RetentionMs        int64 // retention.ms, default 604800000; -1 = unlimited
	RetentionBytes     int64 // retention.bytes, default -1 = unlimited
	Delete             bool  // cleanup.policy contains "delete" (default)
	Compact            bool  // cleanup.policy contains "compact"
	DeleteRetentionMs  int64 // delete.retention.ms, default 86400000
	MinCompactionLagMs int64 // min.compaction.lag.ms, default 0
	IndexIntervalBytes int32 // index.interval.bytes, default 4096
	LogAppendTime      bool  // message.timestamp.type=LogAppendTime
}

// DefaultLogConfig returns Kafka's defaults.
func DefaultLogConfig() LogConfig {
	return LogConfig{
		SegmentBytes:       1 << 30,
		SegmentMs:          7 * 24 * 3600 * 1000,
		RetentionMs:        7 * 24 * 3600 * 1000,
		RetentionBytes:     -1,
		Delete:             true,
		DeleteRetentionMs:  24 * 3600 * 1000,
		IndexIntervalBytes: 4096,
	}
}

// AppendInput carries what the broker decides for an append.
type AppendInput struct {
	LeaderEpoch int32 // stored in every batch's partitionLeaderEpoch
	NowMs       int64 // broker time, used for LogAppendTime and segment.ms
}

// AppendResult describes where an append landed.
type AppendResult struct {
	BaseOffset     int64 // offset of the first record appended (or of the original, for a duplicate)
	LastOffset     int64
	LogAppendTime  int64 // -1 unless the topic uses LogAppendTime
	LogStartOffset int64
	Duplicate      bool // an idempotent retry: nothing was written
	// Gen is the log's truncation generation when the append returned:
	// SyncAppend uses it to tell that a truncation (or the cut of a
	// failed journal round) removed the append, even if the log has
	// grown past its offsets again since.
	Gen uint64
}

// Chunk is a byte range of a segment file holding whole batches. Its
// file stays open (pinned in the Manager's file cache) until the Slice
// holding it is released.
type Chunk struct {
	File *os.File // the segment file when it is a real OS file (sendfile), else nil
	R    ReaderAt // always set
	Pos  int64
	Len  int64
}

// ReaderAt is io.ReaderAt.
type ReaderAt interface {
	ReadAt(p []byte, off int64) (int, error)
}

// Errors the broker maps to Kafka error codes.
var (
	ErrOffsetOutOfRange     = errors.New("storage: offset out of range")
	ErrOutOfOrderSequence   = errors.New("storage: out of order sequence number")
	ErrInvalidProducerEpoch = errors.New("storage: invalid producer epoch")
	ErrRecordTooLarge       = errors.New("storage: record batch too large")
	ErrClosed               = errors.New("storage: log closed")
	// ErrStorage wraps an I/O error (ENOSPC, EIO, EMFILE, …), Kafka's
	// KAFKA_STORAGE_ERROR. An error writing or syncing data fails the log:
	// it accepts no more writes (Failed). An error before anything was
	// written (reopening a segment file the file cache closed, creating a
	// new log's first segment, loading state a clean open left unread)
	// fails only that call.
	ErrStorage = errors.New("storage: I/O error")
	ErrCorrupt = errors.New("storage: corrupt data")
)
