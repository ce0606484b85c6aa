package storage

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/vfs"
)

// sampleSegment builds a small real log and returns its first segment's
// log and index bytes.
func sampleSegment(t testing.TB) (seg, idx []byte) {
	fsys := vfs.NewMem()
	cfg := envCfg
	cfg.IndexIntervalBytes = 1
	m, err := OpenManager(ManagerOptions{Dir: "/s", FS: fsys, FlushOnAck: true})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := m.Create(testID, cfg)
	for i := 0; i < 4; i++ {
		if _, err := l.Append(mkBatch(t, batchSpec{n: 1 + i, ts: int64(i), pid: -1}), AppendInput{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("/s", PartitionDirName(testID))
	seg, _ = readFile(fsys, segmentFile(dir, 0, logSuffix), 1<<20)
	idx, _ = readFile(fsys, segmentFile(dir, 0, indexSuffix), 1<<20)
	return seg, idx
}

// FuzzRecovery opens a log whose only segment and index are arbitrary
// bytes. Opening must not panic; without a clean-shutdown marker the log
// must serve only valid batches and accept appends after them.
func FuzzRecovery(f *testing.F) {
	seg, idx := sampleSegment(f)
	f.Add(seg, idx, false)
	f.Add(seg[:len(seg)-7], idx, false)
	f.Add(seg, idx[:5], true)
	f.Fuzz(func(t *testing.T, seg, idx []byte, clean bool) {
		fsys := vfs.NewMem()
		dir := filepath.Join("/d", PartitionDirName(testID))
		fsys.MkdirAll(dir, 0o755)
		for name, b := range map[string][]byte{
			segmentFile(dir, 0, logSuffix):       seg,
			segmentFile(dir, 0, indexSuffix):     idx,
			segmentFile(dir, 0, timeIndexSuffix): idx,
		} {
			w, _ := fsys.Create(name)
			w.WriteAt(b, 0)
			w.Close()
		}
		if clean {
			// A marker claiming the files are good: recovery trusts them,
			// so only the absence of panics is checked.
			writeCheckpoint(fsys, filepath.Join(dir, cleanShutdownFile), ckKindCleanShutdown,
				putInt64s(int64(len(idx)), 0, int64(len(seg))))
		}
		m, err := OpenManager(ManagerOptions{Dir: "/d", FS: fsys, FlushOnAck: true,
			ConfigFor: func(PartitionID) (LogConfig, bool) { c := envCfg; c.IndexIntervalBytes = 16; return c, true }})
		if err != nil {
			if clean {
				return // a lying marker may make the trusted data unreadable
			}
			t.Fatalf("open: %v", err)
		}
		defer m.Close()
		l := m.Get(testID)
		end := l.LogEndOffset()
		for off := l.LogStartOffset(); off < end; {
			sl, err := l.Read(off, 1<<16, end)
			if err != nil {
				if !clean {
					t.Fatalf("read %d of %d: %v", off, end, err)
				}
				break
			}
			b, err := sl.ReadAll()
			sl.Release()
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			if len(b) == 0 {
				break
			}
			bs, err := recordbatch.Split(b)
			if err != nil {
				if !clean {
					t.Fatalf("served an invalid batch at %d: %v", off, err)
				}
				break
			}
			h, _ := recordbatch.ParseHeader(bs[len(bs)-1])
			if h.LastOffset()+1 <= off {
				t.Fatalf("read %d made no progress", off)
			}
			off = h.LastOffset() + 1
		}
		l.OffsetForTimestamp(0)
		l.MaxTimestamp()
		if clean {
			return
		}
		nb := plain(t, 2, 1)
		res, err := l.Append(nb, AppendInput{})
		if err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
		sl, err := l.Read(res.BaseOffset, 1<<16, res.LastOffset+1)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := sl.ReadAll()
		sl.Release()
		if !bytes.Equal(got, nb) {
			t.Fatal("appended batch does not read back")
		}
	})
}
