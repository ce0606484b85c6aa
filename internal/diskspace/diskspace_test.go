package diskspace

import (
	"errors"
	"testing"
	"time"
)

func TestMonitor(t *testing.T) {
	now := time.Unix(1000, 0)
	free, calls := int64(100), 0
	var fail error
	m, err := New(Config{Dir: "/x", Reserve: 50, Interval: time.Second, Now: func() time.Time { return now },
		Statfs: func(string) (int64, error) { calls++; return free, fail }})
	if err != nil {
		t.Fatal(err)
	}
	if m.Low() {
		t.Fatal("low with 100 free and a reserve of 50")
	}
	free = 10
	if m.Low() {
		t.Fatal("statfs read again within the interval")
	}
	now = now.Add(time.Second)
	if !m.Low() {
		t.Fatal("not low with 10 free")
	}
	if calls != 2 {
		t.Fatalf("%d statfs calls, want 2", calls)
	}
	now = now.Add(time.Second)
	fail = errors.New("eio")
	if m.Low() {
		t.Fatal("a failing statfs counts as low")
	}
	var nilMonitor *Monitor
	if nilMonitor.Low() {
		t.Fatal("nil monitor low")
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("no dir accepted")
	}
	if _, err := New(Config{Dir: "/x", Reserve: -1}); err == nil {
		t.Fatal("negative reserve accepted")
	}
}

func TestStatfsOnARealDirectory(t *testing.T) {
	m, err := New(Config{Dir: t.TempDir(), Reserve: 1})
	if err != nil {
		t.Fatal(err)
	}
	if free, err := m.Free(); err != nil || free <= 0 {
		t.Fatalf("free %d, %v", free, err)
	}
	if m.Low() {
		t.Fatal("a temp dir with less than 1 byte free")
	}
}
