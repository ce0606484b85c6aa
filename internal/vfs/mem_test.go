package vfs

import (
	"errors"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, f File, s string) {
	t.Helper()
	if _, err := f.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func contents(t *testing.T, fsys FS, name string) (string, bool) {
	t.Helper()
	f, err := fsys.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return string(b), true
}

func TestCrashKeepsOnlySynced(t *testing.T) {
	m := NewMem()
	m.MkdirAll("/d", 0o755)
	m.SyncDir("/")
	f, _ := m.Create("/d/a")
	write(t, f, "hello")
	f.Sync()
	write(t, f, " world")
	g, _ := m.Create("/d/b") // never made durable: the directory is not synced after it
	write(t, g, "x")
	g.Sync()

	c := m.CrashClone(CrashOptions{})
	if _, ok := contents(t, c, "/d/a"); ok {
		t.Fatal("file whose directory entry was never synced survived")
	}
	m.SyncDir("/d")
	c = m.CrashClone(CrashOptions{})
	if s, _ := contents(t, c, "/d/a"); s != "hello" {
		t.Fatalf("a = %q, want the synced part", s)
	}
	if s, _ := contents(t, c, "/d/b"); s != "x" {
		t.Fatalf("b = %q", s)
	}
	// The original is unchanged.
	if s, _ := contents(t, m, "/d/a"); s != "hello world" {
		t.Fatalf("original a = %q", s)
	}
}

func TestCrashRenameNeedsDirSync(t *testing.T) {
	m := NewMem()
	m.MkdirAll("/d", 0o755)
	f, _ := m.Create("/d/tmp")
	write(t, f, "new")
	f.Sync()
	m.SyncDir("/")
	m.SyncDir("/d")
	m.Rename("/d/tmp", "/d/final")
	c := m.CrashClone(CrashOptions{})
	if _, ok := contents(t, c, "/d/final"); ok {
		t.Fatal("unsynced rename survived")
	}
	if s, _ := contents(t, c, "/d/tmp"); s != "new" {
		t.Fatal("old name lost")
	}
	m.SyncDir("/d")
	c = m.CrashClone(CrashOptions{})
	if s, _ := contents(t, c, "/d/final"); s != "new" {
		t.Fatal("synced rename lost")
	}
	// Directory renames move their contents.
	m.MkdirAll("/d/sub", 0o755)
	h, _ := m.Create("/d/sub/x")
	h.Close()
	if err := m.Rename("/d/sub", "/d/sub2"); err != nil {
		t.Fatal(err)
	}
	if _, ok := contents(t, m, "/d/sub2/x"); !ok {
		t.Fatal("directory rename lost its file")
	}
}

func TestTornCrashKeepsPrefix(t *testing.T) {
	seen := map[int]bool{}
	for seed := int64(0); seed < 50; seed++ {
		m := NewMem()
		f, _ := m.Create("/a")
		m.SyncDir("/")
		write(t, f, "0123")
		f.Sync()
		write(t, f, "456789")
		c := m.CrashClone(CrashOptions{Rand: rand.New(rand.NewSource(seed))})
		s, _ := contents(t, c, "/a")
		if len(s) < 4 || s != "0123456789"[:len(s)] {
			t.Fatalf("seed %d: %q is not a prefix keeping the synced part", seed, s)
		}
		seen[len(s)] = true
	}
	if len(seen) < 3 {
		t.Fatalf("torn crashes produced only lengths %v", seen)
	}
}

func TestInjectAndGarble(t *testing.T) {
	m := NewMem()
	f, _ := m.Create("/a")
	m.SetInjector(func(op Op, name string) error {
		if op == OpWrite {
			return &PartialWriteError{N: 2}
		}
		if op == OpSync {
			return ErrInjected
		}
		return nil
	})
	n, err := f.WriteAt([]byte("abcdef"), 0)
	if n != 2 || !errors.Is(err, ErrInjected) {
		t.Fatalf("partial write: %d %v", n, err)
	}
	if err := f.Sync(); !errors.Is(err, ErrInjected) {
		t.Fatalf("sync: %v", err)
	}
	m.SetInjector(nil)
	if s, _ := contents(t, m, "/a"); s != "ab" {
		t.Fatalf("after torn write %q", s)
	}
	f.Sync()
	m.Garble("/a", 1, 1, rand.New(rand.NewSource(1)))
	s, _ := contents(t, m, "/a")
	if s[0] != 'a' || s[1] == 'b' {
		t.Fatalf("garble: %q", s)
	}
	m.SyncDir("/")
	if s2, _ := contents(t, m.CrashClone(CrashOptions{}), "/a"); s2 != s {
		t.Fatal("garbling did not reach the synced state")
	}
}

// TestOSAndMemAgree runs the same operations on both implementations.
func TestOSAndMemAgree(t *testing.T) {
	root := t.TempDir()
	for _, c := range []struct {
		fs   FS
		root string
	}{{OS, root}, {NewMem(), "/r"}} {
		p := func(s string) string { return filepath.Join(c.root, s) }
		if err := c.fs.MkdirAll(p("x/y"), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := c.fs.OpenFile(p("x/y/f"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.fs.OpenFile(p("x/y/f"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("O_EXCL on existing file: %v", err)
		}
		f.WriteAt([]byte("hello"), 3)
		f.Truncate(6)
		st, _ := f.Stat()
		if st.Size() != 6 {
			t.Fatalf("size %d", st.Size())
		}
		buf := make([]byte, 6)
		if n, err := f.ReadAt(buf, 0); n != 6 || err != nil || string(buf) != "\x00\x00\x00hel" {
			t.Fatalf("read %q %v", buf, err)
		}
		if n, err := f.ReadAt(buf, 4); n != 2 || !errors.Is(err, io.EOF) {
			t.Fatalf("short read: %d %v", n, err)
		}
		if (OSFile(f) != nil) != (c.fs == OS) {
			t.Fatal("OSFile mismatch")
		}
		f.Close()
		if err := c.fs.SyncDir(p("x/y")); err != nil {
			t.Fatal(err)
		}
		ents, _ := c.fs.ReadDir(p("x/y"))
		if len(ents) != 1 || ents[0].Name() != "f" || ents[0].IsDir() {
			t.Fatalf("readdir %v", ents)
		}
		if err := c.fs.Remove(p("x/y")); err == nil {
			t.Fatal("removed a non-empty directory")
		}
		if err := c.fs.RemoveAll(p("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.fs.Stat(p("x")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("stat after RemoveAll: %v", err)
		}
	}
}
