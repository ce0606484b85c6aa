package storage

import (
	"bytes"
	"testing"

	"github.com/streambus/streambus/internal/vfs"
)

// FuzzAppendReplicated feeds arbitrary bytes, as a leader's fetch response
// could carry them, to a follower log holding a few batches. It must not
// panic; whatever it accepts must read back byte for byte, keep the log
// readable, and survive a clean reopen.
func FuzzAppendReplicated(f *testing.F) {
	seg, _ := sampleSegment(f) // batches at offsets 0..9
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	two := bytes.Clone(seg)
	two[0] ^= 0x80 // a negative base offset
	f.Add(two)
	f.Fuzz(func(t *testing.T, records []byte) {
		fsys := vfs.NewMem()
		m, err := OpenManager(ManagerOptions{Dir: "/f", FS: fsys})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { m.Close() }()
		cfg := envCfg
		cfg.SegmentBytes = 4096
		l, err := m.Create(testID, cfg)
		if err != nil {
			t.Fatal(err)
		}
		res, err := l.AppendReplicated(bytes.Clone(records))
		if err != nil {
			if l.LogEndOffset() != 0 {
				t.Fatalf("rejected append moved the log end to %d", l.LogEndOffset())
			}
			return
		}
		if res.LastOffset+1 != l.LogEndOffset() {
			t.Fatalf("result %+v, log end %d", res, l.LogEndOffset())
		}
		var got []byte
		for _, b := range readAll(t, l, l.LogEndOffset()) {
			got = append(got, b...)
		}
		if !bytes.Equal(got, records) {
			t.Fatalf("read back %d bytes, appended %d", len(got), len(records))
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		m, err = OpenManager(ManagerOptions{Dir: "/f", FS: fsys})
		if err != nil {
			t.Fatal(err)
		}
		if l = m.Get(testID); l == nil || l.LogEndOffset() != res.LastOffset+1 {
			t.Fatalf("after reopen: %v", l)
		}
	})
}
