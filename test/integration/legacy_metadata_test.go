package integration

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streambus/streambus/internal/metadata"
)

// A data directory written by an earlier build's single-node file store
// (meta/metadata.snapshot, no raft/) is imported into the Raft store at
// start: its topics keep their IDs, partitions and records, and meta/ is
// renamed aside; a second start finds nothing to import.
func TestLegacyMetadataImported(t *testing.T) {
	requireProcess(t)
	if harness.kind != "streambus" {
		t.Skip("a StreamBus data directory format")
	}
	const topic = "from-an-earlier-build"
	b := startBroker(t, brokerOpts{})
	cl := newKgo(t, b)
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, 30*time.Second)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		r := &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(strconv.Itoa(i))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	if code, _ := b.Stop(syscall.SIGTERM, shutdownLimit); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d", code)
	}
	// Make the directory look like an earlier build's: its logs, and the
	// topic in the single-node metadata file instead of raft/.
	if err := os.RemoveAll(filepath.Join(b.DataDir, "raft")); err != nil {
		t.Fatal(err)
	}
	host, port := splitHostPort(t, b.Addr)
	local, err := metadata.OpenLocal(metadata.LocalConfig{Dir: filepath.Join(b.DataDir, "meta"), NodeID: 1, Host: host, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	old, err := local.CreateTopic(ctx, metadata.CreateTopicRequest{Name: topic, Partitions: 2, ReplicationFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	clusterID := local.Image().ClusterID
	if err := local.Close(); err != nil {
		t.Fatal(err)
	}

	for run := range 2 {
		b.Restart()
		cl := newKgo(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		adm := kadm.NewClient(cl)
		td, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if d := td[topic]; d.Err != nil || len(d.Partitions) != 2 || d.ID != old.ID {
			t.Fatalf("run %d: topic of the earlier build: %+v (ID %x, want %x)", run, d, d.ID, old.ID)
		}
		if m, err := adm.Metadata(ctx); err != nil || m.Cluster != clusterID {
			t.Fatalf("run %d: cluster ID %q (%v), want the earlier build's %q", run, m.Cluster, err, clusterID)
		}
		n := 0
		for n < 10 {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("run %d: read %d of 10 records: %v", run, n, err)
			}
			n += fs.NumRecords()
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

func splitHostPort(t *testing.T, addr string) (string, int32) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return h, int32(n)
}
