package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streambus/streambus/internal/metadata"
)

// A data directory written by an earlier build's single-node file store
// (testdata/legacy-datadir, made by that build: see legacy-datadir.md) is
// imported into the Raft store at start: its cluster ID, topics (with
// their IDs and partitions) and records are kept, and meta/ is renamed
// aside; a second start finds nothing to import.
func TestLegacyMetadataImported(t *testing.T) {
	requireProcess(t)
	if harness.kind != "streambus" {
		t.Skip("a StreamBus data directory format")
	}
	const (
		topic     = "from-an-earlier-build"
		topicID   = "6425z0K3TxyZxyLr3GC1cg"
		clusterID = "syfL7gWsSOyjGr7rQNZ39Q"
	)
	b := startBroker(t, brokerOpts{})
	if code, _ := b.Stop(syscall.SIGTERM, shutdownLimit); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d", code)
	}
	// Replace the directory with the earlier build's.
	if err := os.RemoveAll(b.DataDir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(b.DataDir, os.DirFS(filepath.Join("testdata", "legacy-datadir"))); err != nil {
		t.Fatal(err)
	}
	wantID, err := metadata.ParseID(topicID)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 60*time.Second)
	for run := range 2 {
		b.Restart()
		cl := newKgo(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		adm := kadm.NewClient(cl)
		td, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if d := td[topic]; d.Err != nil || len(d.Partitions) != 2 || d.ID != wantID {
			t.Fatalf("run %d: topic of the earlier build: %+v (ID %x, want %x)", run, d, d.ID, wantID)
		}
		if m, err := adm.Metadata(ctx); err != nil || m.Cluster != clusterID {
			t.Fatalf("run %d: cluster ID %q (%v), want the earlier build's %q", run, m.Cluster, err, clusterID)
		}
		var values []string
		for len(values) < 10 {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("run %d: read %v of 10 records: %v", run, values, err)
			}
			fs.EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
		}
		slices.Sort(values)
		if got := strings.Join(values, ","); got != "0,1,2,3,4,5,6,7,8,9" {
			t.Fatalf("run %d: records %s", run, got)
		}
		cl.Close()
		if _, err := os.Stat(filepath.Join(b.DataDir, "meta")); !os.IsNotExist(err) {
			t.Fatalf("run %d: meta/ still in place: %v", run, err)
		}
		if _, err := os.Stat(filepath.Join(b.DataDir, "meta.imported", "metadata.snapshot")); err != nil {
			t.Fatalf("run %d: the earlier build's metadata not set aside: %v", run, err)
		}
		if code, _ := b.Stop(syscall.SIGTERM, shutdownLimit); code != 0 {
			t.Fatalf("run %d: exit code after SIGTERM = %d", run, code)
		}
	}
}
