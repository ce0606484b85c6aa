package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// parseAcks maps --acks to kgo's setting. Kafka's names: all (-1), 1, 0.
func parseAcks(s string) (kgo.Acks, error) {
	switch strings.ToLower(s) {
	case "all", "-1":
		return kgo.AllISRAcks(), nil
	case "1":
		return kgo.LeaderAck(), nil
	case "0":
		return kgo.NoAck(), nil
	}
	return kgo.Acks{}, fmt.Errorf("--acks: unknown value %q (want all|1|0)", s)
}

// acksAll reports whether s names acks=all; callers have validated s.
func acksAll(s string) bool {
	s = strings.ToLower(s)
	return s == "all" || s == "-1"
}

// parseCompression maps --compression to a kgo codec.
func parseCompression(s string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(s) {
	case "none", "":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("--compression: unknown codec %q (want none|gzip|snappy|lz4|zstd)", s)
}

// producerOpts builds the kgo options shared by produce and bench from the
// acks, compression and idempotence choices. idempotentSet says whether the
// user gave --idempotent explicitly: by default idempotence follows acks=all
// (Kafka requires acks=all for an idempotent producer).
func producerOpts(acks, compression string, idempotent, idempotentSet bool) ([]kgo.Opt, error) {
	ack, err := parseAcks(acks)
	if err != nil {
		return nil, err
	}
	codec, err := parseCompression(compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.RequiredAcks(ack), kgo.ProducerBatchCompression(codec)}
	all := acksAll(acks)
	switch {
	case idempotentSet && idempotent && !all:
		return nil, fmt.Errorf("--idempotent requires --acks all (got --acks %s)", acks)
	case !all || (idempotentSet && !idempotent):
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	return opts, nil
}

// parseKeyValues parses repeated k=v flags (split at the first '='). flag
// names the flag in errors. Keys must be non-empty; values may be empty.
func parseKeyValues(flag string, items []string) ([][2]string, error) {
	out := make([][2]string, 0, len(items))
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not of the form key=value", flag, it)
		}
		if k == "" {
			return nil, fmt.Errorf("%s: %q has an empty key", flag, it)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// parseFrom parses consume's --from value into a kgo start offset:
//
//	beginning | earliest   the log start of each partition
//	end | latest           the log end: only records produced from now on
//	N                      absolute offset N (clamped to the log's bounds)
//	-N                     N records before the log end of each partition
//	@MS                    the first record with timestamp >= MS (Unix ms),
//	                       or the log end if there is none
func parseFrom(s string) (kgo.Offset, error) {
	switch strings.ToLower(s) {
	case "beginning", "earliest", "start":
		return kgo.NewOffset().AtStart(), nil
	case "end", "latest":
		return kgo.NewOffset().AtEnd(), nil
	}
	if ts, ok := strings.CutPrefix(s, "@"); ok {
		ms, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || ms < 0 {
			return kgo.Offset{}, fmt.Errorf("--from: %q: want @TIMESTAMP_MS with a non-negative Unix time in milliseconds", s)
		}
		return kgo.NewOffset().AfterMilli(ms), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return kgo.Offset{}, fmt.Errorf("--from: %q: want beginning, end, OFFSET, -N or @TIMESTAMP_MS", s)
	}
	if n < 0 {
		return kgo.NewOffset().AtEnd().Relative(n), nil
	}
	return kgo.NewOffset().At(n), nil
}
