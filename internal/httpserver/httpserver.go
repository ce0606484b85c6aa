// Package httpserver serves the broker's operational HTTP endpoints:
//
//	/healthz        200 "ok" while the process is live
//	/readyz         200 "ready" when Config.Ready reports true, else 503;
//	                with ?verbose, followed by Config.Problems, one per line
//	/metrics        the Prometheus exposition of Config.Gatherer
//	/debug/pprof/*  net/http/pprof profiles
//
// Everything is registered on the server's own ServeMux. (Importing
// net/http/pprof also registers its handlers on http.DefaultServeMux as a
// side effect of its init; this package never serves that mux.)
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures a Server.
type Config struct {
	// Addr is the HOST:PORT to listen on; port 0 picks a free port.
	// Required.
	Addr string
	// Gatherer supplies /metrics. Default: an empty registry.
	Gatherer prometheus.Gatherer
	// Ready reports readiness for /readyz; it is called on every request,
	// from the request's goroutine, so it must be safe for concurrent use.
	// Default: always ready.
	Ready func() bool
	// Problems lists, for /readyz?verbose, what is wrong without making
	// the broker unready (offline partitions). Called per request, from
	// the request's goroutine. Default: none.
	Problems func() []string
	// Logger receives the listen address and server errors. Default:
	// discard.
	Logger *slog.Logger
}

// Validate reports whether the Config can be used.
func (c Config) Validate() error {
	if c.Addr == "" {
		return errors.New("httpserver: Addr is required")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("httpserver: Addr %q: %w", c.Addr, err)
	}
	return nil
}

// shutdownGrace bounds how long Serve waits for in-flight requests after
// its context is cancelled before closing their connections: a 30-second
// CPU profile must not hold up broker shutdown.
const shutdownGrace = 5 * time.Second

// Server is the HTTP server. Its methods are safe for concurrent use.
// Lifecycle: New, optionally Listen (to learn the bound address), then
// Serve, which blocks until its context ends or Shutdown is called.
type Server struct {
	cfg Config
	log *slog.Logger
	srv *http.Server

	mu       sync.Mutex
	ln       net.Listener // guarded by mu; set by Listen
	serving  bool         // guarded by mu; Serve owns ln from then on
	shutdown bool         // guarded by mu
}

// New creates a Server; it does not listen yet.
func New(cfg Config) *Server {
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log}
	s.srv = &http.Server{
		Handler: s.Handler(),
		// Slow-header clients must not pin goroutines. There is no
		// WriteTimeout: /debug/pprof/profile legitimately streams for 30s.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// Handler returns the routing handler, for embedding or tests.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		status := "ready"
		if !s.cfg.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			status = "not ready"
		}
		_, _ = w.Write([]byte(status))
		if r.URL.Query().Has("verbose") && s.cfg.Problems != nil {
			for _, p := range s.cfg.Problems() {
				_, _ = w.Write([]byte("\n" + p))
			}
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves named profiles: heap, goroutine, ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Listen binds Config.Addr and returns the bound address. Calling it again,
// or after Shutdown, is an error.
func (s *Server) Listen() (net.Addr, error) {
	if err := s.cfg.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return nil, errors.New("httpserver: listen after shutdown")
	}
	if s.ln != nil {
		return nil, errors.New("httpserver: already listening")
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("httpserver: listen %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.log.Info("http server listening", "addr", ln.Addr().String())
	return ln.Addr(), nil
}

// Serve serves HTTP until ctx is done or Shutdown is called, listening first
// if Listen was not called. It returns nil after either kind of stop, and
// an error if listening or serving fails. When ctx ends, in-flight requests
// get a short grace period before their connections are closed. Serve may
// be called once.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	needListen := s.ln == nil && !s.shutdown
	s.mu.Unlock()
	if needListen {
		if _, err := s.Listen(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return errors.New("httpserver: Serve called twice")
	}
	if s.shutdown {
		s.mu.Unlock()
		return nil
	}
	s.serving = true
	ln := s.ln
	s.mu.Unlock()

	stopped := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // stops the server when ctx ends; Serve waits for it
		defer wg.Done()
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			defer cancel()
			if err := s.Shutdown(sctx); err != nil {
				s.log.Warn("http server: shutdown after context end", "err", err)
			}
		case <-stopped:
		}
	}()
	err := s.srv.Serve(ln)
	close(stopped)
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("httpserver: serve: %w", err)
}

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends, then closes the remaining connections and returns ctx's
// error. It releases the listener even if Serve was never called, and is
// safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	ln, serving := s.ln, s.serving
	s.mu.Unlock()
	if !serving && ln != nil {
		// Serve never took ownership of the listener; close it here. If
		// Serve is just starting, srv.Shutdown below makes it return
		// ErrServerClosed, and closing ln twice is harmless.
		_ = ln.Close()
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("httpserver: shutdown: %w", err)
	}
	return nil
}
