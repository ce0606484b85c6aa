package integration

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/streambus/streambus/internal/metadata"
)

// A single node is a one-voter Raft quorum, but a data directory written by
// an earlier build's single-node file store (meta/metadata.snapshot, no
// raft/) keeps that store: its topics survive the upgrade instead of being
// dropped (and their logs deleted as unclaimed).
func TestLegacyLocalMetadataKept(t *testing.T) {
	requireProcess(t)
	if harness.kind != "streambus" {
		t.Skip("a StreamBus data directory format")
	}
	b := startBroker(t, brokerOpts{})
	if code, _ := b.Stop(syscall.SIGTERM, shutdownLimit); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d", code)
	}
	if _, err := os.Stat(filepath.Join(b.DataDir, "raft")); err != nil {
		t.Fatalf("a new single node keeps its metadata in raft/: %v", err)
	}
	// Make the directory look like an earlier build's.
	if err := os.RemoveAll(filepath.Join(b.DataDir, "raft")); err != nil {
		t.Fatal(err)
	}
	host, port := splitHostPort(t, b.Addr)
	local, err := metadata.OpenLocal(metadata.LocalConfig{Dir: filepath.Join(b.DataDir, "meta"), NodeID: 1, Host: host, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := local.CreateTopic(ctx, metadata.CreateTopicRequest{Name: "from-an-earlier-build", Partitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if err := local.Close(); err != nil {
		t.Fatal(err)
	}

	b.Restart()
	adm := kadm.NewClient(newKgo(t, b))
	td, err := adm.ListTopics(testCtx(t, 10*time.Second), "from-an-earlier-build")
	if err != nil {
		t.Fatal(err)
	}
	if d := td["from-an-earlier-build"]; d.Err != nil || len(d.Partitions) != 2 {
		t.Fatalf("topic of the earlier build: %+v", d)
	}
	if _, err := os.Stat(filepath.Join(b.DataDir, "raft")); !os.IsNotExist(err) {
		t.Fatalf("raft/ created next to the earlier build's metadata: %v", err)
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
