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
	"github.com/streambus/streambus/internal/diskspace"
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
	s, err := Start(ctx, cfg, logger)
	if err != nil || s == nil {
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case runErr = <-s.serveErr:
		logger.Error("kafka listener failed", "err", runErr)
	}
	if err := s.Stop(); err != nil {
		return errors.Join(runErr, err)
	}
	if runErr == nil {
		logger.Info("stopped cleanly")
	}
	return runErr
}

// Server is one broker process's parts. Start brings them up in order;
// Stop takes down whatever is up, in reverse. Not safe for concurrent use.
type Server struct {
	cfg   config.Config
	log   *slog.Logger
	reg   *prometheus.Registry
	m     *metrics.Metrics
	ready atomic.Bool
	start time.Time

	hs       *httpserver.Server
	httpAddr net.Addr
	stopHTTP context.CancelFunc
	httpDone chan error

	ln         net.Listener
	host       string
	port       int32
	meta       *controller.Store
	disk       *diskspace.Monitor
	logs       *storage.Manager
	stopBG     context.CancelFunc
	bgDone     chan struct{}
	b          *broker.Broker
	offline    atomic.Pointer[broker.Broker] // b, for the HTTP server's goroutines
	serveErr   chan error                    // the Kafka listener's end, once serving (buffered)
	serveDone  chan struct{}                 // closed when Serve returned
	stopped    bool
	quorumGone bool // ctx ended while waiting for the metadata quorum
}

// Start validates cfg and starts, in order: HTTP, the Kafka listener
// (bound, not yet accepting), metadata, the logs, the broker, then waits
// to be unfenced and accepts clients; /readyz answers 200 from then on. If
// ctx ends while it waits for the quorum or to be unfenced it stops what
// it started and returns nil, nil.
func Start(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	s := &Server{cfg: cfg, log: logger, reg: prometheus.NewRegistry(), start: time.Now()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.m = metrics.New(s.reg)
	for _, step := range []func(context.Context) error{
		s.startHTTP, s.listenKafka, s.openMetadata, s.openLogs, s.startBroker, s.waitUnfenced, s.serve,
	} {
		if err := step(ctx); err != nil {
			stopErr := s.Stop()
			if ctx.Err() != nil || s.quorumGone {
				return nil, nil
			}
			return nil, errors.Join(err, stopErr)
		}
	}
	return s, nil
}

// HTTPAddr and KafkaAddr are the addresses the listeners bound.
func (s *Server) HTTPAddr() net.Addr  { return s.httpAddr }
func (s *Server) KafkaAddr() net.Addr { return s.ln.Addr() }

func (s *Server) startHTTP(context.Context) error {
	s.hs = httpserver.New(httpserver.Config{Addr: s.cfg.HTTPAddr, Gatherer: s.reg, Ready: s.ready.Load, Problems: s.problems, Logger: s.log})
	addr, err := s.hs.Listen()
	if err != nil {
		s.hs = nil
		return fmt.Errorf("server: http listener: %w", err)
	}
	s.httpAddr = addr
	httpCtx, stop := context.WithCancel(context.Background())
	s.stopHTTP, s.httpDone = stop, make(chan error, 1)
	go func() { s.httpDone <- s.hs.Serve(httpCtx) }() // ends with stopHTTP, waited by Stop
	return nil
}

// listenKafka binds the Kafka port now, so that clients connecting during
// recovery wait in its backlog rather than being refused.
func (s *Server) listenKafka(context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.KafkaAddr)
	if err != nil {
		return fmt.Errorf("server: kafka listener %s: %w", s.cfg.KafkaAddr, err)
	}
	s.ln = ln
	s.host, s.port, err = advertised(s.cfg, ln.Addr())
	return err
}

func (s *Server) openMetadata(ctx context.Context) error {
	meta, err := openMetadata(ctx, s.cfg, s.host, s.port, s.log)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if meta == nil {
		s.quorumGone = true
		return context.Canceled // stopped while waiting for the metadata quorum
	}
	s.meta = meta
	return nil
}

func (s *Server) openLogs(context.Context) error {
	cfg, meta := s.cfg, s.meta
	disk, err := diskspace.New(diskspace.Config{Dir: cfg.DataDir, Reserve: cfg.LogDirMinFreeBytes})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	logs, err := storage.OpenManager(storage.ManagerOptions{
		Dir:                    filepath.Join(cfg.DataDir, "logs"),
		Logger:                 s.log,
		FlushOnAck:             cfg.FlushMode == config.FlushOnAck,
		FlushInterval:          cfg.FlushInterval,
		RetentionCheckInterval: cfg.LogRetentionCheckInterval,
		MaxOpenFiles:           int(cfg.LogMaxOpenFiles),
		OnFsync:                s.m.ObserveFsync,
		ConfigFor: func(id storage.PartitionID) (storage.LogConfig, bool) {
			t := meta.Image().Topics[id.Topic]
			if t == nil {
				return storage.LogConfig{}, false
			}
			res, err := topicconfig.Resolve(t.Configs, cfg.TopicDefaults)
			return res.Log, err == nil
		},
		// After a write failed for want of space (the reserve disabled,
		// or another process filled the disk), recover once there is
		// room again: the reserve, and at least 1 MiB.
		CanRecover: func() bool {
			free, err := disk.Free()
			return err == nil && free >= max(cfg.LogDirMinFreeBytes, 1<<20)
		},
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.logs = logs
	s.disk = disk
	s.m.RegisterLogStats(func() (int, int64) { return len(logs.Partitions()), logs.TotalSize() })
	return nil
}

func (s *Server) startBroker(ctx context.Context) error {
	cfg := s.cfg
	overrides, err := resolveConnectionOverrides(ctx, cfg.MaxConnectionsPerIPOverrides)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	b, err := broker.New(broker.Config{
		NodeID:          cfg.NodeID,
		AdvertisedHost:  s.host,
		AdvertisedPort:  s.port,
		MaxRequestBytes: cfg.SocketRequestMaxBytes,
		IdleTimeout:     cfg.ConnectionsMaxIdle,

		MaxConnections:               int(cfg.MaxConnections),
		MaxConnectionsPerIP:          int(cfg.MaxConnectionsPerIP),
		MaxConnectionsPerIPOverrides: overrides,

		RequestReadTimeout: cfg.RequestReadTimeout,
		AutoCreateTopics:   cfg.AutoCreateTopics,
		NumPartitions:      cfg.NumPartitions,
		ReplicationFactor:  cfg.DefaultReplicationFactor,
		FlushOnAck:         cfg.FlushMode == config.FlushOnAck,
		TopicDefaults:      cfg.TopicDefaults,
		BrokerConfigs:      cfg.BrokerConfigEntries,
		DataDir:            cfg.DataDir,
		Disk:               s.disk,
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
		Logger:  s.log,
		Metrics: s.m,
	}, s.meta, s.logs)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.b = b
	s.offline.Store(b)
	s.m.RegisterOfflinePartitions(func() int { return len(b.OfflinePartitions()) })
	bgCtx, stop := context.WithCancel(context.Background())
	s.stopBG, s.bgDone = stop, make(chan struct{})
	go func() { defer close(s.bgDone); s.logs.Run(bgCtx) }() // ends with stopBG, waited by Stop
	return nil
}

// waitUnfenced waits for the controller to unfence this broker (it asked
// to stay fenced until it served its first Image, which broker.New did),
// then for the partition host to apply the image that says so, in which
// the partitions it leads have their leader again: the first requests
// are then answered from it.
func (s *Server) waitUnfenced(ctx context.Context) error {
	if err := s.meta.WaitReady(ctx); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := s.b.WaitApplied(ctx, s.meta.Image().Version); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

func (s *Server) serve(context.Context) error {
	s.serveErr, s.serveDone = make(chan error, 1), make(chan struct{})
	go func() { // ends with b.Shutdown, waited by Stop
		defer close(s.serveDone)
		s.serveErr <- s.b.Serve(s.ln)
	}()
	s.ready.Store(true)
	s.log.Info("broker ready", "kafka", s.ln.Addr().String(), "advertised", net.JoinHostPort(s.host, strconv.Itoa(int(s.port))),
		"http", s.httpAddr.String(), "data-dir", s.cfg.DataDir, "partitions", len(s.logs.Partitions()),
		"startup", time.Since(s.start).Round(time.Millisecond))
	return nil
}

// Stop takes down, in reverse start order, whatever Start brought up:
// readiness drops, partition leadership moves away (controlled shutdown),
// the broker stops accepting and answers what is in flight (within
// cfg.ShutdownTimeout), background log work stops, the logs are flushed
// and closed, then the metadata store, the Kafka listener and HTTP. It
// returns the first errors of closing the logs; calling it again does
// nothing.
func (s *Server) Stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	s.ready.Store(false)
	var errs []error
	sdCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if s.b != nil {
		if s.serveDone != nil {
			// Move partition leadership away before this broker stops
			// serving, so clients and followers switch to the new
			// leaders at once.
			csCtx, csCancel := context.WithTimeout(sdCtx, s.cfg.ShutdownTimeout/2)
			if err := s.meta.ControlledShutdown(csCtx); err != nil {
				s.log.Warn("controlled shutdown", "err", err)
			}
			csCancel()
		}
		if err := s.b.Shutdown(sdCtx); err != nil {
			s.log.Warn("in-flight requests cut short", "err", err)
		}
		if s.serveDone != nil {
			<-s.serveDone
		}
	}
	if s.stopBG != nil {
		s.stopBG()
		<-s.bgDone
	}
	if s.logs != nil {
		if err := s.logs.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: close logs: %w", err))
		}
	}
	if s.meta != nil {
		s.meta.Close()
	}
	if s.ln != nil {
		s.ln.Close()
	}
	if s.stopHTTP != nil {
		s.stopHTTP()
		<-s.httpDone
	}
	return errors.Join(errs...)
}

// openMetadata opens the metadata layer, the Raft-replicated store; it
// waits, until ctx ends, for the quorum to elect a controller and register
// this broker (fenced until the broker serves its first Image). Without
// voters the broker is a one-voter quorum of its own (on raft-addr,
// default an ephemeral port on the Kafka listener's IP); a data directory
// written by an earlier build's single-node file store
// (meta/metadata.snapshot) has its topics imported into it once. It
// returns nil, nil if ctx ended first.
func openMetadata(ctx context.Context, cfg config.Config, host string, port int32, logger *slog.Logger) (*controller.Store, error) {
	// A single node whose data directory an earlier build wrote keeps
	// that store's topics: they are imported with the cluster's init
	// command, and the old files are renamed aside once that committed.
	var legacy *controller.Legacy
	if len(cfg.Voters) == 0 {
		var err error
		if legacy, err = controller.ReadLegacy(filepath.Join(cfg.DataDir, "meta"), cfg.NodeID); err != nil {
			return nil, fmt.Errorf("metadata of an earlier build in %s: %w", filepath.Join(cfg.DataDir, "meta"), err)
		}
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
		Import:                             legacy,
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
	if legacy != nil {
		if err := setLegacyAside(cfg.DataDir, legacy, cs.Image(), logger); err != nil {
			cs.Close()
			return nil, err
		}
	}
	return cs, nil
}

// setLegacyAside renames an earlier build's meta/ to meta.imported/ once
// the Raft store holds its cluster (the import committed with init). A
// Raft store of another cluster means the import never happened: the old
// files stay, with a warning.
func setLegacyAside(dataDir string, legacy *controller.Legacy, img *metadata.Image, logger *slog.Logger) error {
	from := filepath.Join(dataDir, "meta")
	if img.ClusterID != legacy.ClusterID {
		logger.Warn("metadata of an earlier build not imported: the Raft store holds another cluster",
			"dir", from, "cluster_id", img.ClusterID, "earlier_cluster_id", legacy.ClusterID)
		return nil
	}
	to := filepath.Join(dataDir, "meta.imported")
	if _, err := os.Stat(to); err == nil {
		to = fmt.Sprintf("%s.%d", to, time.Now().UnixNano())
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("server: set imported metadata aside: %w", err)
	}
	logger.Info("imported the metadata of an earlier build", "topics", len(legacy.Topics), "cluster_id", legacy.ClusterID, "old_files", to)
	return nil
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

// resolveConnectionOverrides turns max.connections.per.ip.overrides into
// limits by IP address, resolving host names as Kafka does at start.
func resolveConnectionOverrides(ctx context.Context, spec string) (map[string]int, error) {
	hosts, err := config.ParseConnectionOverrides(spec)
	if err != nil || len(hosts) == 0 {
		return nil, err
	}
	out := make(map[string]int, len(hosts))
	for host, n := range hosts {
		if ip := net.ParseIP(host); ip != nil {
			out[ip.String()] = n
			continue
		}
		addrs, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("max.connections.per.ip.overrides: %w", err)
		}
		for _, a := range addrs {
			out[a] = n
		}
	}
	return out, nil
}

// problems is what /readyz?verbose lists beyond readiness: the partitions
// whose log failed.
func (s *Server) problems() []string {
	b := s.offline.Load()
	if b == nil {
		return nil
	}
	off := b.OfflinePartitions()
	if len(off) == 0 {
		return nil
	}
	out := []string{fmt.Sprintf("offline partitions: %d", len(off))}
	for _, p := range off {
		out = append(out, fmt.Sprintf("  %s-%d: %v", p.ID.Topic, p.ID.Partition, p.Err))
	}
	return out
}
