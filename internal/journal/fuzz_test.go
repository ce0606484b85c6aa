package journal

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/streambus/streambus/internal/vfs"
)

// FuzzRecover: any bytes as the journal's files open without a panic,
// replay only whole, CRC-valid records, survive a second open unchanged,
// and take appends after them.
func FuzzRecover(f *testing.F) {
	good := appendHeader(nil, 0)
	good = appendRecord(good, entry(3))
	good = appendRecord(good, entry(9))
	f.Add(good, []byte{})
	f.Add(good[:len(good)-3], []byte{})
	f.Add(good, appendRecord(appendHeader(nil, int64(len(good)-headerSize)), entry(4)))
	f.Add([]byte("SBJL\x00\x01"), []byte("garbage"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, first, second []byte) {
		fsys := vfs.NewMem()
		fsys.MkdirAll("/j", 0o755)
		write := func(lsn int64, data []byte) {
			w, err := fsys.Create(filepath.Join("/j", fileName(lsn)))
			if err != nil {
				t.Fatal(err)
			}
			w.WriteAt(data, 0)
			w.Sync()
			w.Close()
		}
		write(0, first)
		if len(second) > 0 {
			write(recordBytes(int64(len(first))), second)
		}
		j, err := Open(Options{Dir: "/j", FS: fsys, FileSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		var got []Entry
		j.Replay(func(_ int64, e Entry) error {
			e.Data = bytes.Clone(e.Data)
			got = append(got, e)
			return nil
		})
		end := j.End()
		lsn, err := j.Append(entry(1))
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Sync(lsn); err != nil {
			t.Fatal(err)
		}
		j.Close()
		j2, err := Open(Options{Dir: "/j", FS: fsys, FileSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer j2.Close()
		var again []Entry
		j2.Replay(func(_ int64, e Entry) error {
			again = append(again, e)
			return nil
		})
		if len(again) != len(got)+1 {
			t.Fatalf("%d entries, then %d after one append", len(got), len(again))
		}
		for i, e := range got {
			if e.Offset != again[i].Offset || !bytes.Equal(e.Data, again[i].Data) {
				t.Fatalf("entry %d changed across opens", i)
			}
		}
		if j2.End() != lsn || lsn <= end {
			t.Fatalf("end %d, appended at %d after %d", j2.End(), lsn, end)
		}
	})
}
