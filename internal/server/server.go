// Package server wires a whole StreamBus broker process together: the
// metadata store, the log manager, the Kafka listener and the HTTP server
// (health, readiness, metrics, pprof), and runs them until the context
// ends.
//
// Start order: HTTP (so /healthz answers during recovery), metadata (this
// broker registered, still fenced), log recovery, the broker (its
// partitions opened for the current metadata, as far as they open; a
// partition that fails is logged and retried, and the served report lets
// the controller unfence the broker), then the Kafka listener once
// unfenced; /readyz turns ready
// only after all of that. Stop order is the reverse: stop accepting and answer in-flight
// requests, then flush and close every log, then the metadata store.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/streambus/streambus/internal/broker"
	"github.com/streambus/streambus/internal/config"
	"github.com/streambus/streambus/internal/controller"
	"github.com/streambus/streambus/internal/group"
	"github.com/streambus/streambus/internal/httpserver"
	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/metrics"
	"github.com/streambus/streambus/internal/storage"
	"github.com/streambus/streambus/internal/topicconfig"
)

// Run runs a broker until ctx is done, then shuts it down gracefully within
// cfg.ShutdownTimeout. It returns nil after a clean shutdown.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("server: data dir: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)

	var ready atomic.Bool
	hs := httpserver.New(httpserver.Config{Addr: cfg.HTTPAddr, Gatherer: reg, Ready: ready.Load, Logger: logger})
	httpAddr, err := hs.Listen()
	if err != nil {
		return fmt.Errorf("server: http listener: %w", err)
	}
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	httpDone := make(chan error, 1)
	go func() { httpDone <- hs.Serve(httpCtx) }()
	defer func() {
		stopHTTP()
		<-httpDone
	}()

	ln, err := net.Listen("tcp", cfg.KafkaAddr)
	if err != nil {
		return fmt.Errorf("server: kafka listener %s: %w", cfg.KafkaAddr, err)
	}
	defer ln.Close()
	host, port, err := advertised(cfg, ln.Addr())
	if err != nil {
		return err
	}

	start := time.Now()
	meta, err := openMetadata(ctx, cfg, host, port, logger)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if meta == nil {
		return nil // stopped while waiting for the metadata quorum
	}
	defer meta.Close()

	logs, err := storage.OpenManager(storage.ManagerOptions{
		Dir:                    filepath.Join(cfg.DataDir, "logs"),
		Logger:                 logger,
		FlushOnAck:             cfg.FlushMode == config.FlushOnAck,
		FlushInterval:          cfg.FlushInterval,
		RetentionCheckInterval: cfg.LogRetentionCheckInterval,
		OnFsync:                m.ObserveFsync,
		ConfigFor: func(id storage.PartitionID) (storage.LogConfig, bool) {
			t := meta.Image().Topics[id.Topic]
			if t == nil {
				return storage.LogConfig{}, false
			}
			res, err := topicconfig.Resolve(t.Configs, cfg.TopicDefaults)
			return res.Log, err == nil
		},
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	logsClosed := false
	defer func() {
		if !logsClosed {
			logs.Close()
		}
	}()
	m.RegisterLogStats(func() (int, int64) { return len(logs.Partitions()), logs.TotalSize() })

	b, err := broker.New(broker.Config{
		NodeID:             cfg.NodeID,
		AdvertisedHost:     host,
		AdvertisedPort:     port,
		MaxRequestBytes:    cfg.SocketRequestMaxBytes,
		IdleTimeout:        cfg.ConnectionsMaxIdle,
		RequestReadTimeout: cfg.RequestReadTimeout,
		AutoCreateTopics:   cfg.AutoCreateTopics,
		NumPartitions:      cfg.NumPartitions,
		ReplicationFactor:  cfg.DefaultReplicationFactor,
		FlushOnAck:         cfg.FlushMode == config.FlushOnAck,
		TopicDefaults:      cfg.TopicDefaults,
		BrokerConfigs:      cfg.BrokerConfigEntries,
		DataDir:            cfg.DataDir,
		FetcherLocalAddr:   localIP(cfg.KafkaAddr),
		ReplicaLagTime:     cfg.ReplicaLagTime,

		// replica.selector.class
		RackAwareReplicaSelector: cfg.RackAware(),

		Groups: broker.GroupConfig{
			OffsetsTopicPartitions:        cfg.Groups.OffsetsTopicPartitions,
			OffsetsTopicReplicationFactor: offsetsTopicRF(cfg),
			Coordinator: group.Config{
				GroupMinSessionTimeout:    cfg.Groups.MinSessionTimeout,
				GroupMaxSessionTimeout:    cfg.Groups.MaxSessionTimeout,
				InitialRebalanceDelay:     cfg.Groups.InitialRebalanceDelay,
				GroupMaxSize:              int(cfg.Groups.MaxSize),
				OffsetsRetention:          cfg.Groups.OffsetsRetention,
				OffsetMetadataMaxBytes:    int(cfg.Groups.OffsetMetadataMaxBytes),
				ConsumerSessionTimeout:    cfg.Groups.ConsumerSessionTimeout,
				ConsumerHeartbeatInterval: cfg.Groups.ConsumerHeartbeatInterval,
				ConsumerAssignors:         cfg.Groups.ConsumerAssignors,
			},
		},
		Logger:  logger,
		Metrics: m,
	}, meta, logs)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}

	bgCtx, stopBG := context.WithCancel(context.Background())
	bgDone := make(chan struct{})
	go func() { defer close(bgDone); logs.Run(bgCtx) }()

	if cs, ok := meta.(*controller.Store); ok {
		// The broker asked to stay fenced until it served its first
		// Image (it did in New); clients are served once the controller
		// has unfenced it.
		if err := cs.WaitReady(ctx); err != nil {
			stopBG()
			<-bgDone
			b.Shutdown(context.Background())
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("server: %w", err)
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- b.Serve(ln) }()
	ready.Store(true)
	logger.Info("broker ready", "kafka", ln.Addr().String(), "advertised", net.JoinHostPort(host, strconv.Itoa(int(port))),
		"http", httpAddr.String(), "data-dir", cfg.DataDir, "partitions", len(logs.Partitions()),
		"startup", time.Since(start).Round(time.Millisecond))

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case runErr = <-serveErr:
		logger.Error("kafka listener failed", "err", runErr)
	}
	ready.Store(false)
	sdCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if cs, ok := meta.(interface{ ControlledShutdown(context.Context) error }); ok {
		// Move partition leadership away before this broker stops serving,
		// so clients and followers switch to the new leaders at once.
		csCtx, csCancel := context.WithTimeout(sdCtx, cfg.ShutdownTimeout/2)
		if err := cs.ControlledShutdown(csCtx); err != nil {
			logger.Warn("controlled shutdown", "err", err)
		}
		csCancel()
	}
	if err := b.Shutdown(sdCtx); err != nil {
		logger.Warn("in-flight requests cut short", "err", err)
	}
	stopBG()
	<-bgDone
	logsClosed = true
	if err := logs.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("server: close logs: %w", err))
	}
	if runErr == nil {
		logger.Info("stopped cleanly")
	}
	return runErr
}

// openMetadata opens the metadata layer, the Raft-replicated store; it
// waits, until ctx ends, for the quorum to elect a controller and register
// this broker (fenced until the broker serves its first Image). Without voters the broker is a one-voter quorum of its own
// (on raft-addr, default an ephemeral port on the Kafka listener's IP). A
// data directory written by an earlier build's single-node file store
// (meta/metadata.snapshot, no raft/) keeps that store, so its topics are
// not lost. It returns nil, nil if ctx ended first.
func openMetadata(ctx context.Context, cfg config.Config, host string, port int32, logger *slog.Logger) (metadata.Store, error) {
	if len(cfg.Voters) == 0 && legacyLocalMetadata(cfg.DataDir) {
		logger.Info("using the single-node metadata file of an earlier build", "dir", filepath.Join(cfg.DataDir, "meta"))
		return metadata.OpenLocal(metadata.LocalConfig{
			Dir:                      filepath.Join(cfg.DataDir, "meta"),
			NodeID:                   cfg.NodeID,
			Host:                     host,
			Port:                     port,
			Rack:                     cfg.BrokerRack,
			Logger:                   logger,
			ValidateConfigs:          topicconfig.ValidateAll,
			DefaultPartitions:        cfg.NumPartitions,
			DefaultReplicationFactor: cfg.DefaultReplicationFactor,
		})
	}
	if len(cfg.Voters) == 0 {
		if cfg.RaftAddr == "" {
			ip := localIP(cfg.KafkaAddr)
			if ip == "" {
				ip = "127.0.0.1"
			}
			cfg.RaftAddr = net.JoinHostPort(ip, "0")
		}
		cfg.Voters = map[int32]string{cfg.NodeID: cfg.RaftAddr}
	}
	cs, err := controller.Open(controller.Config{
		NodeID:                   cfg.NodeID,
		RaftAddr:                 cfg.RaftAddr,
		Voters:                   cfg.Voters,
		Dir:                      filepath.Join(cfg.DataDir, "raft"),
		KafkaHost:                host,
		KafkaPort:                port,
		Rack:                     cfg.BrokerRack,
		Logger:                   logger,
		ValidateConfigs:          topicconfig.ValidateAll,
		DefaultPartitions:        cfg.NumPartitions,
		DefaultReplicationFactor: cfg.DefaultReplicationFactor,
		HeartbeatInterval:        cfg.BrokerHeartbeatInterval,
		SessionTimeout:           cfg.BrokerSessionTimeout,
		RaftTimeout:              cfg.ControllerElectionTimeout,

		DisableLeaderRebalance:             !cfg.AutoLeaderRebalance,
		LeaderImbalanceCheckInterval:       cfg.LeaderImbalanceCheckInterval,
		LeaderImbalancePerBrokerPercentage: cfg.LeaderImbalancePerBroker,
		ReportServed:                       true,
	})
	if err != nil {
		return nil, err
	}
	role := "voter"
	if _, ok := cfg.Voters[cfg.NodeID]; !ok {
		role = "non-voter" // joins the Raft configuration through the voters
	}
	logger.Info("waiting for the metadata quorum", "voters", len(cfg.Voters), "raft", cfg.RaftAddr, "role", role)
	if err := cs.WaitRegistered(ctx); err != nil {
		cs.Close()
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, err
	}
	return cs, nil
}

// advertised is the host and port clients are told to use: the advertised
// address if set, else the listener's, with the bound port when it asked
// for port 0 and "localhost" when it bound every interface.
func advertised(cfg config.Config, bound net.Addr) (string, int32, error) {
	addr := cfg.AdvertisedKafkaAddr
	if addr == "" {
		addr = cfg.KafkaAddr
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("server: advertised address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("server: advertised port %q: %w", portStr, err)
	}
	if port == 0 {
		port = bound.(*net.TCPAddr).Port
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return host, int32(port), nil
}

// localIP is the IP of a listen address, for binding outgoing connections
// to the broker's own address; "" when it names no specific IP.
func localIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return ip.String()
	}
	return ""
}

// offsetsTopicRF is offsets.topic.replication.factor capped at the number
// of voters (1 for a single node): Kafka's default of 3 would otherwise
// leave a single node, or a two-voter cluster, without group coordinators.
// A cluster with at least as many voters gets exactly what is configured.
func offsetsTopicRF(cfg config.Config) int16 {
	return int16(min(int(cfg.Groups.OffsetsTopicReplicationFactor), max(len(cfg.Voters), 1)))
}

// legacyLocalMetadata reports whether dataDir holds the single-node
// metadata file of an earlier build and no Raft state.
func legacyLocalMetadata(dataDir string) bool {
	if _, err := os.Stat(filepath.Join(dataDir, "raft")); err == nil {
		return false
	}
	_, err := os.Stat(filepath.Join(dataDir, "meta", "metadata.snapshot"))
	return err == nil
}
