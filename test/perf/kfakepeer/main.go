// Command kfakepeer runs franz-go's in-process fake broker (kfake) as a
// stand-alone benchmark peer, so `streambus-cli bench` can measure it and a
// StreamBus broker on the same machine in the same run. It is a yardstick
// only: kfake is not a production broker and not a model for StreamBus.
//
//	kfakepeer --addr 127.0.0.1:9192 --data-dir /tmp/kfake --partitions 16
//
// It serves until SIGINT or SIGTERM, then closes the cluster (flushing its
// data directory, if any) and exits. kfake answers a batch it could not
// write to its data dir with UNKNOWN_SERVER_ERROR and says why only in its
// log, so benchmark scripts run it with --log-level warn (logs go to stderr).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ready := func(addrs []string) { fmt.Printf("kfakepeer listening on %s\n", strings.Join(addrs, ",")) }
	if err := run(ctx, os.Args[1:], ready); err != nil {
		fmt.Fprintf(os.Stderr, "kfakepeer: %v\n", err)
		os.Exit(1)
	}
}

// run serves until ctx is done; ready receives the listen addresses once the
// cluster accepts connections.
func run(ctx context.Context, args []string, ready func(addrs []string)) error {
	fs := flag.NewFlagSet("kfakepeer", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9192", "host:port to listen on (port 0 picks a free one)")
	dataDir := fs.String("data-dir", "", "persist the log in this directory (default: in memory only)")
	partitions := fs.Int("partitions", 16, "partitions of auto-created topics and the broker default for CreateTopics with -1")
	syncWrites := fs.Bool("sync-writes", false, "fsync every batch (only with --data-dir); the default relies on the page cache like Kafka")
	logLevel := fs.String("log-level", "none", "kfake's log on stderr: none|error|warn|info|debug")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *partitions < 1 {
		return fmt.Errorf("--partitions must be positive, got %d", *partitions)
	}
	if *syncWrites && *dataDir == "" {
		return fmt.Errorf("--sync-writes needs --data-dir")
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return fmt.Errorf("--addr %q: %w", *addr, err)
	}
	level, err := parseLogLevel(*logLevel)
	if err != nil {
		return err
	}

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(*partitions),
		kfake.AllowAutoTopicCreation(),
		// kfake always listens on 127.0.0.1; ListenFn substitutes the
		// requested address (the single broker advertises what it bound).
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, *addr) }),
	}
	if level != kfake.LogLevelNone {
		opts = append(opts, kfake.WithLogger(kfake.BasicLogger(os.Stderr, level)))
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
		if *syncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start kfake: %w", err)
	}
	defer c.Close() // with --data-dir, Close persists the final state
	ready(c.ListenAddrs())
	<-ctx.Done()
	return nil
}

func parseLogLevel(s string) (kfake.LogLevel, error) {
	switch s {
	case "none":
		return kfake.LogLevelNone, nil
	case "error":
		return kfake.LogLevelError, nil
	case "warn":
		return kfake.LogLevelWarn, nil
	case "info":
		return kfake.LogLevelInfo, nil
	case "debug":
		return kfake.LogLevelDebug, nil
	}
	return 0, fmt.Errorf("--log-level: unknown level %q (want none|error|warn|info|debug)", s)
}
