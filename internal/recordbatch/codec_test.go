package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/pierrec/lz4/v4"
)

func codecInputs() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 100<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	return map[string][]byte{
		"empty":        {},
		"one":          {'x'},
		"text":         bytes.Repeat([]byte("the quick brown fox "), 5000), // > one xerial chunk
		"random":       random,
		"chunk-exact":  bytes.Repeat([]byte{7}, xerialBlockSize),
		"chunk-plus-1": bytes.Repeat([]byte{7}, xerialBlockSize+1),
	}
}

func TestCompressRoundTrip(t *testing.T) {
	for _, c := range allCodecs {
		for name, in := range codecInputs() {
			t.Run(c.String()+"/"+name, func(t *testing.T) {
				prefix := []byte("prefix")
				comp, err := Compress(c, in, append([]byte(nil), prefix...))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(comp, prefix) {
					t.Fatal("Compress did not append to dst")
				}
				comp = comp[len(prefix):]
				out, err := Decompress(c, comp, append([]byte(nil), prefix...), len(in))
				if err != nil {
					t.Fatalf("Decompress at exact bound: %v", err)
				}
				if !bytes.Equal(out[:len(prefix)], prefix) || !bytes.Equal(out[len(prefix):], in) {
					t.Fatalf("round trip mismatch: %d bytes in, %d out", len(in), len(out)-len(prefix))
				}
				if len(in) > 0 {
					_, err := Decompress(c, comp, nil, len(in)-1)
					if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrCorrupt) {
						t.Fatalf("Decompress one byte under the bound: got %v, want ErrTooLarge", err)
					}
				}
			})
		}
	}
}

// Snappy must be produced xerial-framed and accepted both framed and raw.
func TestSnappyFraming(t *testing.T) {
	in := bytes.Repeat([]byte("snappy "), 20000)
	comp, err := Compress(CodecSnappy, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(comp, []byte("\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01")) {
		t.Fatalf("snappy output not xerial framed: % x", comp[:16])
	}
	raw := snappy.Encode(nil, in)
	out, err := Decompress(CodecSnappy, raw, nil, len(in))
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("raw snappy block: err %v, equal %v", err, bytes.Equal(out, in))
	}
	// A framed stream with only the header is empty.
	out, err = Decompress(CodecSnappy, comp[:xerialHeaderSize], nil, 10)
	if err != nil || len(out) != 0 {
		t.Fatalf("header-only xerial: %q, %v", out, err)
	}
}

func TestDecompressCorrupt(t *testing.T) {
	in := bytes.Repeat([]byte("corrupt me please "), 1000)
	for _, c := range allCodecs[1:] {
		t.Run(c.String(), func(t *testing.T) {
			comp, err := Compress(c, in, nil)
			if err != nil {
				t.Fatal(err)
			}
			cases := map[string][]byte{
				"garbage":   []byte("this is not compressed data at all"),
				"truncated": comp[:len(comp)/2],
				"flipped":   flipByte(comp, len(comp)/2),
			}
			for name, src := range cases {
				if _, err := Decompress(c, src, nil, 1<<20); !errors.Is(err, ErrCorrupt) {
					t.Errorf("%s: got %v, want ErrCorrupt", name, err)
				}
			}
		})
	}
	if _, err := Decompress(Codec(5), []byte("x"), nil, 10); !errors.Is(err, ErrCorrupt) {
		t.Errorf("codec 5: got %v, want ErrCorrupt", err)
	}
	if _, err := Compress(Codec(6), []byte("x"), nil); err == nil {
		t.Error("Compress with codec 6 succeeded")
	}
}

// flipByte returns a copy of b with byte i changed. gzip's CRC-32 and the
// lz4 and zstd content checksums catch any flip; snappy has no checksum, so
// for it this only holds for this input (the flip lands in an element tag),
// and the fuzz target covers the rest.
func flipByte(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0xff
	return out
}

const gib = 1 << 30

// bombs returns inputs that each decompress to 1 GiB of zeros (or claim
// to), built cheaply without ever holding the gigabyte.
func bombs(t *testing.T) map[Codec][][]byte {
	t.Helper()
	zeros := make([]byte, 1<<20)

	// gzip: 1024 concatenated members of 1 MiB of zeros each.
	member, err := Compress(CodecGzip, zeros, nil)
	if err != nil {
		t.Fatal(err)
	}
	gz := bytes.Repeat(member, gib/len(zeros))

	// zstd: RLE blocks of 128 KiB, without and with a declared content size.
	zstdRLE := func(withFCS bool) []byte {
		b := []byte{0x28, 0xb5, 0x2f, 0xfd}
		if withFCS {
			b = append(b, 0x80, 0x58) // FCS 4 bytes; window 2 MiB
			b = binary.LittleEndian.AppendUint32(b, gib)
		} else {
			b = append(b, 0x00, 0x58) // no FCS; window 2 MiB
		}
		const blk = 128 << 10
		for i := range gib / blk {
			hdr := uint32(blk)<<3 | 1<<1 // RLE block
			if i == gib/blk-1 {
				hdr |= 1 // last block
			}
			b = append(b, byte(hdr), byte(hdr>>8), byte(hdr>>16), 0)
		}
		return b
	}

	// lz4: one 64 KiB block of zeros repeated in a single frame.
	var lzbuf bytes.Buffer
	zw := lz4.NewWriter(&lzbuf)
	if err := zw.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false)); err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(zeros[:64<<10]); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	frame := lzbuf.Bytes()
	blkLen := int(binary.LittleEndian.Uint32(frame[7:]) & 0x7fffffff)
	block := frame[7 : 11+blkLen]
	lz := append(bytes.Clone(frame[:7]), bytes.Repeat(block, gib/(64<<10))...)
	lz = append(lz, 0, 0, 0, 0)

	// snappy: a raw block claiming 1 GiB, and xerial chunks of 32 KiB zeros.
	rawClaim := binary.AppendUvarint(nil, gib)
	rawClaim = append(rawClaim, 0x00)
	chunk := snappy.Encode(nil, zeros[:xerialBlockSize])
	xerial := append([]byte(nil), xerialMagic...)
	xerial = binary.BigEndian.AppendUint32(xerial, 1)
	xerial = binary.BigEndian.AppendUint32(xerial, 1)
	for range gib / xerialBlockSize {
		xerial = binary.BigEndian.AppendUint32(xerial, uint32(len(chunk)))
		xerial = append(xerial, chunk...)
	}
	return map[Codec][][]byte{
		CodecGzip:   {gz},
		CodecZstd:   {zstdRLE(false), zstdRLE(true)},
		CodecLZ4:    {lz},
		CodecSnappy: {rawClaim, xerial},
	}
}

// A decompression bomb must fail at the bound without producing (or
// allocating) anything near what it claims. Allocation, not time, is
// asserted, so the test is deterministic.
func TestDecompressBomb(t *testing.T) {
	const bound = 1 << 20
	for c, inputs := range bombs(t) {
		for i, src := range inputs {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Decompress(c, src, nil, bound)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("%v bomb %d: got %v, want ErrTooLarge", c, i, err)
			}
			// zstd allocates its window (2 MiB declared) and ring buffer;
			// everything else stays near the bound.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("%v bomb %d: allocated %d MiB for a %d MiB bound", c, i, alloc>>20, bound>>20)
			}
		}
	}
}

// A zstd frame may declare a window larger than the output bound (libzstd
// declares 2 MiB when streaming); it must still decode within the bound.
func TestZstdLargeWindowSmallBound(t *testing.T) {
	// Frame: no FCS, window 2 MiB, one raw block of 5 bytes, last.
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58}
	hdr := uint32(5)<<3 | 0<<1 | 1
	b = append(b, byte(hdr), byte(hdr>>8), byte(hdr>>16))
	b = append(b, "hello"...)
	out, err := Decompress(CodecZstd, b, nil, 16)
	if err != nil || string(out) != "hello" {
		t.Fatalf("got %q, %v", out, err)
	}
	// A window above both the bound and the 8 MiB floor is refused.
	huge := bytes.Clone(b)
	huge[5] = (27 - 10) << 3 // 128 MiB
	if _, err := Decompress(CodecZstd, huge, nil, 16); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("128 MiB window with 16-byte bound: got %v, want ErrCorrupt", err)
	}
}

// gzip from the standard library layout must be readable (Java writes
// plain single-member gzip).
func TestGzipSingleMember(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte("hello gzip")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := Decompress(CodecGzip, buf.Bytes(), nil, 100)
	if err != nil || string(out) != "hello gzip" {
		t.Fatalf("got %q, %v", out, err)
	}
}

// Outputs above the zstd window floor use a larger window class, and
// every codec handles output spanning many blocks.
func TestDecompressLarge(t *testing.T) {
	in := make([]byte, 12<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range in {
		if i%64 < 8 {
			in[i] = byte(rng.Uint32())
		} else {
			in[i] = byte(i >> 10)
		}
	}
	for _, c := range allCodecs {
		comp, err := Compress(c, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Decompress(c, comp, nil, len(in))
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("%v: equal %v, %v", c, bytes.Equal(out, in), err)
		}
		if _, err := Decompress(c, comp, nil, 9<<20); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%v with a 9 MiB bound: got %v, want ErrTooLarge", c, err)
		}
	}
}

// Pooled codec state is shared across goroutines; run with -race. Bounds
// differ per goroutine so pooled zstd decoders switch window classes.
func TestConcurrentCodecs(t *testing.T) {
	in := bytes.Repeat([]byte("concurrent "), 3000)
	comp := map[Codec][]byte{}
	for _, c := range allCodecs {
		b, err := Compress(c, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		comp[c] = b
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 50 {
				c := allCodecs[(g+i)%len(allCodecs)]
				bound := len(in) + g*(16<<20)
				out, err := Decompress(c, comp[c], nil, bound)
				if err == nil && !bytes.Equal(out, in) {
					err = errors.New("output differs")
				}
				if err == nil {
					_, err = Compress(c, out, nil)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
