package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compression of the records section of a batch.
//
// Every decompressor here is bounded: output is produced incrementally and
// decoding stops with ErrTooLarge as soon as it would pass the caller's
// limit, so a few kilobytes of hostile input (a "decompression bomb") cannot
// make the broker allocate gigabytes. No allocation is sized from a length
// the input claims without first checking that length against the limit.
//
// Codec state (gzip/lz4 readers and writers, zstd decoders and encoders) is
// expensive to build, so it is cached in sync.Pools at package level. These
// pools are the one exception to "no package-level mutable state": they hold
// no semantic state, only reusable scratch, and every pooled object is reset
// before use. None of them owns a goroutine (zstd and lz4 run with
// concurrency 1), so objects the pools drop need no Close.
//
// Snappy output uses the xerial framing that the Java client and franz-go
// produce (magic "\x82SNAPPY\x00", version 1, compatible version 1, then
// [int32 length][raw snappy block] chunks of at most 32 KiB of input), so
// that batches this broker writes (compaction rewrites them) decode in every
// client, including old librdkafka and Java versions that expect it. Input
// may be framed or a single raw snappy block: a raw block cannot start with
// the xerial magic (its first element would be a copy, which is invalid at
// the start of a block), so the two are told apart unambiguously.

// ErrTooLarge is returned (wrapped) when decompressed data would exceed the
// caller's bound. It wraps ErrCorrupt, so the broker answers such a batch
// with CORRUPT_MESSAGE like any other undecodable batch.
var ErrTooLarge = fmt.Errorf("%w: decompressed size exceeds limit", ErrCorrupt)

// Xerial framing constants (the snappy-java stream format).
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const (
	xerialHeaderSize = 16       // magic + int32 version + int32 compatible version
	xerialBlockSize  = 32 << 10 // input bytes per chunk, as snappy-java writes
	xerialVersion    = 1
	xerialCompatible = 1
)

// zstdMinWindowLimit is the smallest window a zstd frame may declare
// regardless of the output bound: producers declare windows bigger than the
// data they compress (libzstd at level 3 declares 2 MiB for any streamed
// input; levels up to 19 declare at most 8 MiB), so tying the window limit to
// a small output bound would reject legitimate batches. A frame may declare
// a window (or, for single-segment frames, a content size) up to the power
// of two at or above max(bound, this), capped at zstdMaxWindowLimit; larger
// declarations are rejected, which bounds the decoder's window allocation.
const zstdMinWindowLimit = 8 << 20

// zstdMaxWindowLimit caps the declared window however large the output bound
// is; it is libzstd's own default decoding limit (windowLog 27).
const zstdMaxWindowLimit = 1 << 27

// Decompress decompresses src, compressed with codec c, and appends the
// result to dst. At most maxSize bytes are appended: if the output would be
// larger, decoding stops and an error wrapping ErrTooLarge (and so
// ErrCorrupt) is returned; maxSize <= 0 allows only empty output. Malformed
// input returns an error wrapping ErrCorrupt. On error the returned slice is
// nil; dst's contents beyond its length may have been overwritten.
//
// CodecNone copies src, subject to the same bound. Decompress is safe for
// concurrent use.
func Decompress(c Codec, src []byte, dst []byte, maxSize int) ([]byte, error) {
	maxSize = max(maxSize, 0)
	var (
		out []byte
		err error
	)
	switch c {
	case CodecNone:
		if len(src) > maxSize {
			return nil, fmt.Errorf("recordbatch: %d bytes, limit %d: %w", len(src), maxSize, ErrTooLarge)
		}
		return append(dst, src...), nil
	case CodecGzip:
		out, err = gunzip(dst, src, maxSize)
	case CodecSnappy:
		out, err = unsnappy(dst, src, maxSize)
	case CodecLZ4:
		out, err = unlz4(dst, src, maxSize)
	case CodecZstd:
		out, err = unzstd(dst, src, maxSize)
	default:
		return nil, fmt.Errorf("%w: unknown codec %d", ErrCorrupt, int8(c))
	}
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("recordbatch: decompress %v: %w", c, err)
	}
	return out, nil
}

// Compress compresses src with codec c and appends the result to dst.
// CodecNone appends src unchanged. Compress is safe for concurrent use; it
// fails only for an unknown codec or an encoder error.
func Compress(c Codec, src []byte, dst []byte) ([]byte, error) {
	switch c {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		return compressGzip(dst, src)
	case CodecSnappy:
		return compressSnappy(dst, src), nil
	case CodecLZ4:
		return compressLZ4(dst, src)
	case CodecZstd:
		return compressZstd(dst, src)
	}
	return nil, fmt.Errorf("recordbatch: compress: unknown codec %d", int8(c))
}

// readBounded appends everything r produces to dst, failing with ErrTooLarge
// once more than maxSize bytes have been produced. The buffer grows by
// doubling what has actually been decoded, never by what the input claims,
// and never past maxSize+1 new bytes: that one extra byte is how an
// oversized stream is detected without reading it further.
func readBounded(dst []byte, r io.Reader, maxSize int) ([]byte, error) {
	start := len(dst)
	limit := start + maxSize + 1 // reading this many bytes means "too large"
	for empty := 0; ; {
		if len(dst) == limit {
			// Checked before a Read's io.EOF too: a reader may return
			// its last bytes together with io.EOF.
			return nil, fmt.Errorf("more than %d bytes: %w", maxSize, ErrTooLarge)
		}
		if len(dst) == cap(dst) && len(dst) > start {
			// A caller that sized dst exactly would otherwise pay for
			// a doubling just to read io.EOF: probe first.
			var probe [1]byte
			n, err := r.Read(probe[:])
			if n == 0 && err == io.EOF {
				return dst, nil
			}
			if err != nil && err != io.EOF {
				return nil, err
			}
			if n == 0 {
				if empty++; empty > 100 {
					return nil, io.ErrNoProgress
				}
			}
			if n > 0 {
				dst = slices.Grow(dst, min(max(len(dst)-start, 512), limit-len(dst)))
				dst = append(dst, probe[0])
			}
			continue
		}
		if len(dst) == cap(dst) {
			grow := max(len(dst)-start, 512)
			dst = slices.Grow(dst, min(grow, limit-len(dst)))
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), limit)])
		dst = dst[:len(dst)+n]
		if n == 0 && err == nil {
			if empty++; empty > 100 {
				return nil, io.ErrNoProgress
			}
		}
		if err == io.EOF && len(dst) < limit {
			return dst, nil
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
	}
}

// appendWriter is an io.Writer appending to a slice, so that streaming
// compressors can append to the caller's dst without an extra copy.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// gzip

// gzipReader pairs a pooled decompressor with the bytes.Reader it reads
// from, so that neither is allocated per call.
type gzipReader struct {
	src bytes.Reader
	zr  *gzip.Reader
}

var gzipReaders sync.Pool // *gzipReader

func gunzip(dst, src []byte, maxSize int) ([]byte, error) {
	gr, _ := gzipReaders.Get().(*gzipReader)
	if gr == nil {
		gr = new(gzipReader)
	}
	gr.src.Reset(src)
	defer func() {
		gr.src.Reset(nil) // drop the reference to src before pooling
		gzipReaders.Put(gr)
	}()
	var err error
	if gr.zr == nil {
		gr.zr, err = gzip.NewReader(&gr.src)
	} else {
		err = gr.zr.Reset(&gr.src)
	}
	if err != nil {
		return nil, err
	}
	return readBounded(dst, gr.zr, maxSize)
}

var gzipWriters = sync.Pool{New: func() any {
	// NewWriterLevel fails only for an invalid level.
	w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
	return w
}}

func compressGzip(dst, src []byte) ([]byte, error) {
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	aw := &appendWriter{b: dst}
	zw.Reset(aw)
	if _, err := zw.Write(src); err != nil {
		return nil, fmt.Errorf("recordbatch: gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("recordbatch: gzip: %w", err)
	}
	zw.Reset(nil)
	return aw.b, nil
}

// snappy

func unsnappy(dst, src []byte, maxSize int) ([]byte, error) {
	if len(src) < xerialHeaderSize || !bytes.Equal(src[:len(xerialMagic)], xerialMagic) {
		return snappyBlock(dst, src, maxSize)
	}
	// The version fields are not checked, as neither snappy-java nor
	// franz-go checks them: version 1 is the only one ever written.
	start := len(dst)
	rest := src[xerialHeaderSize:]
	for len(rest) > 0 {
		if len(rest) < 4 {
			return nil, fmt.Errorf("xerial chunk length: %w", ErrTruncated)
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(n) > uint64(len(rest)) {
			return nil, fmt.Errorf("xerial chunk of %d bytes with %d remaining: %w", n, len(rest), ErrTruncated)
		}
		var err error
		if dst, err = snappyBlock(dst, rest[:n], maxSize-(len(dst)-start)); err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	return dst, nil
}

// snappyBlock appends one raw snappy block. The block's length prefix is
// checked against the bound before anything is allocated. The strict decoder
// is used because Java and librdkafka consumers reject S2 extensions that the
// lenient one accepts, and a broker must not store what consumers cannot read.
func snappyBlock(dst, block []byte, maxSize int) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return nil, err
	}
	if n > maxSize {
		return nil, fmt.Errorf("snappy block of %d bytes, %d allowed: %w", n, maxSize, ErrTooLarge)
	}
	start := len(dst)
	dst = slices.Grow(dst, n)
	tail := dst[start : start+n]
	out, err := snappy.DecodeStrict(tail, block)
	if err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, fmt.Errorf("snappy block decoded to %d bytes, header says %d", len(out), n)
	}
	if n > 0 && &out[0] != &tail[0] {
		copy(tail, out)
	}
	return dst[:start+n], nil
}

func compressSnappy(dst, src []byte) []byte {
	dst = append(dst, xerialMagic...)
	dst = binary.BigEndian.AppendUint32(dst, xerialVersion)
	dst = binary.BigEndian.AppendUint32(dst, xerialCompatible)
	for len(src) > 0 {
		chunk := src[:min(len(src), xerialBlockSize)]
		src = src[len(chunk):]
		lenAt := len(dst)
		dst = binary.BigEndian.AppendUint32(dst, 0)
		dst = slices.Grow(dst, snappy.MaxEncodedLen(len(chunk)))
		tail := dst[len(dst):cap(dst)]
		enc := snappy.Encode(tail, chunk)
		binary.BigEndian.PutUint32(dst[lenAt:], uint32(len(enc)))
		if len(enc) > 0 && &enc[0] != &tail[0] {
			copy(tail, enc) // not expected: tail has MaxEncodedLen room
		}
		dst = dst[:len(dst)+len(enc)]
	}
	return dst
}

// lz4

type lz4Reader struct {
	src bytes.Reader
	zr  *lz4.Reader
}

var lz4Readers = sync.Pool{New: func() any { return &lz4Reader{zr: lz4.NewReader(nil)} }}

func unlz4(dst, src []byte, maxSize int) ([]byte, error) {
	lr := lz4Readers.Get().(*lz4Reader)
	lr.src.Reset(src)
	lr.zr.Reset(&lr.src)
	defer func() {
		lr.src.Reset(nil)
		lr.zr.Reset(nil)
		lz4Readers.Put(lr)
	}()
	return readBounded(dst, lr.zr, maxSize)
}

var lz4Writers sync.Pool // *lz4.Writer

func compressLZ4(dst, src []byte) ([]byte, error) {
	zw, _ := lz4Writers.Get().(*lz4.Writer)
	if zw == nil {
		zw = lz4.NewWriter(nil)
		// 64 KiB blocks as the Java producer writes them: the smallest
		// block size keeps consumer-side buffers small, and independent
		// blocks (the default) are what the Java decoder requires.
		if err := zw.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
			return nil, fmt.Errorf("recordbatch: lz4 options: %w", err)
		}
	}
	defer lz4Writers.Put(zw)
	aw := &appendWriter{b: dst}
	zw.Reset(aw)
	if _, err := zw.Write(src); err != nil {
		return nil, fmt.Errorf("recordbatch: lz4: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("recordbatch: lz4: %w", err)
	}
	zw.Reset(nil)
	return aw.b, nil
}

// zstd

// zstdDecoder is a pooled single-goroutine streaming decoder together with
// the window limit it is currently configured for, so options are only
// rebuilt when a call needs a different limit.
type zstdDecoder struct {
	src    bytes.Reader
	d      *zstd.Decoder
	window uint64
}

var zstdDecoders sync.Pool // *zstdDecoder

// zstdWindowLimit is the largest window (and single-segment frame size) a
// frame may declare for a given output bound; rounding to a power of two
// keeps pooled decoders from being reconfigured on every call.
func zstdWindowLimit(maxSize int) uint64 {
	w := uint64(zstdMinWindowLimit)
	for w < uint64(maxSize) && w < zstdMaxWindowLimit {
		w <<= 1
	}
	return w
}

// unzstd streams the frame through a decoder rather than using DecodeAll:
// DecodeAll's only bound is a per-decoder option that also caps the
// declared window, which would couple the accepted window to each call's
// output bound. Streaming keeps the window limit fixed per size class while
// readBounded enforces the exact output bound. The decoder runs with
// concurrency 1, which decodes synchronously in Read and starts no
// goroutines. bytes.Reader (unlike bytes.Buffer) does not trigger the
// decoder's in-memory shortcut, which would decode everything at once.
func unzstd(dst, src []byte, maxSize int) ([]byte, error) {
	window := zstdWindowLimit(maxSize)
	zd, _ := zstdDecoders.Get().(*zstdDecoder)
	if zd == nil {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(window),
			zstd.WithDecoderMaxMemory(window))
		if err != nil {
			return nil, fmt.Errorf("new zstd decoder: %w", err)
		}
		zd = &zstdDecoder{d: d, window: window}
	}
	defer func() {
		zd.src.Reset(nil)
		// Reset(nil) drops the decoder's reference and cannot fail.
		_ = zd.d.Reset(nil)
		zstdDecoders.Put(zd)
	}()
	var err error
	zd.src.Reset(src)
	br := &zd.src
	if zd.window != window {
		err = zd.d.ResetWithOptions(br, zstd.WithDecoderMaxWindow(window), zstd.WithDecoderMaxMemory(window))
		zd.window = window
	} else {
		err = zd.d.Reset(br)
	}
	if err != nil {
		return nil, err
	}
	out, err := readBounded(dst, zd.d, maxSize)
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		err = fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	return out, err
}

var zstdEncoders sync.Pool // *zstd.Encoder

// compressZstd uses pooled encoders rather than one shared encoder: EncodeAll
// is safe for concurrent use, but with concurrency 1 calls would queue on
// the encoder's single block encoder.
func compressZstd(dst, src []byte) ([]byte, error) {
	e, _ := zstdEncoders.Get().(*zstd.Encoder)
	if e == nil {
		var err error
		if e, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1)); err != nil {
			return nil, fmt.Errorf("recordbatch: zstd encoder: %w", err)
		}
	}
	defer zstdEncoders.Put(e)
	return e.EncodeAll(src, dst), nil
}
