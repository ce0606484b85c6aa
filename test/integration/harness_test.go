package integration

import (
	// The tests run a broker binary built from source at run time; this
	// import makes `go test` re-run them when broker code changes instead
	// of answering from its cache.
	_ "github.com/streambus/streambus/internal/server"

	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// envAddr points the tests at a broker that is already running.
	envAddr = "STREAMBUS_TEST_ADDR"
	// envBroker=kfake forces the kfake child process instead of the real
	// broker.
	envBroker = "STREAMBUS_TEST_BROKER"
	// envKfakeChild marks the test binary re-executed as a kfake broker.
	envKfakeChild = "STREAMBUS_INTEGRATION_KFAKE_CHILD"

	brokerPkg = "github.com/streambus/streambus/cmd/streambus-broker"

	// readyTimeout bounds how long a broker may take to answer /readyz.
	readyTimeout = 30 * time.Second
	// shutdownLimit is the broker contract's bound on a graceful exit.
	shutdownLimit = 10 * time.Second
)

// harness describes the broker under test; set once in TestMain.
var harness struct {
	kind     string // "streambus", "kfake" or "external"
	bin      string // executable to start (the test binary itself for kfake)
	external string // host:port when kind == "external"
}

func TestMain(m *testing.M) {
	if os.Getenv(envKfakeChild) == "1" {
		os.Exit(runKfakeChild(os.Args[1:]))
	}
	flag.Parse()
	cleanup, err := setupHarness()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// setupHarness decides which broker the tests run against and builds it.
func setupHarness() (cleanup func(), err error) {
	cleanup = func() {}
	if addr := os.Getenv(envAddr); addr != "" {
		harness.kind, harness.external = "external", addr
		fmt.Fprintf(os.Stderr, "integration: testing the broker at %s; process tests will skip\n", addr)
		return cleanup, nil
	}
	useKfake := os.Getenv(envBroker) == "kfake"
	if !useKfake {
		exists, err := brokerSourceExists()
		if err != nil {
			return cleanup, err
		}
		if !exists {
			fmt.Fprintln(os.Stderr, "integration: cmd/streambus-broker does not exist yet; testing kfake instead")
			useKfake = true
		}
	}
	if useKfake {
		self, err := os.Executable()
		if err != nil {
			return cleanup, fmt.Errorf("find test executable: %w", err)
		}
		harness.kind, harness.bin = "kfake", self
		return cleanup, nil
	}
	dir, err := os.MkdirTemp("", "streambus-integration-bin-")
	if err != nil {
		return cleanup, fmt.Errorf("make build dir: %w", err)
	}
	cleanup = func() { os.RemoveAll(dir) }
	bin := filepath.Join(dir, "streambus-broker")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, brokerPkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return func() {}, fmt.Errorf("go build %s: %w\n%s", brokerPkg, err, out)
	}
	fmt.Fprintf(os.Stderr, "integration: built streambus-broker in %v\n", time.Since(start).Round(time.Millisecond))
	harness.kind, harness.bin = "streambus", bin
	return cleanup, nil
}

// brokerSourceExists reports whether the module has cmd/streambus-broker.
func brokerSourceExists() (bool, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return false, fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return false, errors.New("not inside a Go module")
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(gomod), "cmd", "streambus-broker", "*.go"))
	return len(matches) > 0, nil
}

// brokerOpts configures one broker process.
type brokerOpts struct {
	// Env holds extra STREAMBUS_* settings, e.g. "STREAMBUS_NUM_PARTITIONS=3".
	Env []string
	// Args are extra command-line flags (cluster tests: --node-id,
	// --raft-addr, --voters).
	Args []string
	// Host is the loopback IP the broker's listeners use; default 127.0.0.1.
	Host string
	// noWait makes start return without waiting for /readyz (a cluster
	// member is ready only once a quorum is up).
	noWait bool
}

// broker is one broker under test: a child process, or an external address.
type broker struct {
	t        testing.TB
	Addr     string // Kafka listener, host:port
	HTTPAddr string // health and metrics listener, host:port
	DataDir  string

	opts brokerOpts
	proc *brokerProcess // nil for an external broker
}

// brokerProcess is one run of the broker executable.
type brokerProcess struct {
	cmd     *exec.Cmd
	output  *syncBuffer
	exited  chan struct{} // closed once Wait returned
	waitErr error         // valid after exited is closed
}

// requireProcess skips tests that need to own the broker process.
func requireProcess(t testing.TB) {
	t.Helper()
	if harness.kind == "external" {
		t.Skipf("needs a broker process started by the test; %s is set", envAddr)
	}
}

// startBroker starts a broker for this test (or returns the external one)
// and arranges for it to be killed, and its output logged on failure, when
// the test ends.
func startBroker(t testing.TB, opts brokerOpts) *broker {
	t.Helper()
	if harness.kind == "external" {
		if len(opts.Env) > 0 {
			t.Skipf("needs broker settings %v; %s is set", opts.Env, envAddr)
		}
		return &broker{t: t, Addr: harness.external}
	}
	b := &broker{t: t, DataDir: t.TempDir(), opts: opts}
	t.Cleanup(b.cleanup)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		// Free ports are found by binding and releasing, so another process
		// can take one in between: retry with fresh ports.
		host := opts.Host
		if host == "" {
			host = "127.0.0.1"
		}
		b.Addr, b.HTTPAddr = freeAddrOn(t, host), freeAddrOn(t, host)
		if lastErr = b.start(); lastErr == nil {
			return b
		}
		t.Logf("broker start attempt %d: %v", attempt+1, lastErr)
	}
	t.Fatalf("start broker: %v", lastErr)
	return nil
}

// start runs the executable on b's addresses and waits for /readyz.
func (b *broker) start() error {
	args := []string{
		"--data-dir", b.DataDir,
		"--kafka-addr", b.Addr,
		"--advertised-kafka-addr", b.Addr,
		"--http-addr", b.HTTPAddr,
	}
	args = append(args, b.opts.Args...)
	cmd := exec.Command(harness.bin, args...)
	cmd.Env = append(os.Environ(), b.opts.Env...)
	if harness.kind == "kfake" {
		cmd.Env = append(cmd.Env, envKfakeChild+"=1")
	}
	p := &brokerProcess{cmd: cmd, output: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", harness.bin, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	b.proc = p
	if b.opts.noWait {
		return nil
	}
	if err := b.waitReady(); err != nil {
		b.kill()
		b.t.Logf("broker output:\n%s", p.output.Tail(16<<10))
		return err
	}
	return nil
}

// waitReady polls /readyz until it answers 200, the process exits or
// readyTimeout passes.
func (b *broker) waitReady() error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-b.proc.exited:
			return fmt.Errorf("broker exited before ready: %v", b.proc.waitErr)
		default:
		}
		resp, err := hc.Get("http://" + b.HTTPAddr + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("broker not ready within %v", readyTimeout)
}

// Pid returns the broker's process id.
func (b *broker) Pid() int {
	b.t.Helper()
	if b.proc == nil {
		b.t.Fatal("broker has no process")
	}
	return b.proc.cmd.Process.Pid
}

// Stop sends sig and waits up to limit for the process to exit. It returns
// the exit code (-1 if killed by a signal) and how long the exit took; it
// fails the test if the process did not exit in time.
func (b *broker) Stop(sig syscall.Signal, limit time.Duration) (code int, took time.Duration) {
	b.t.Helper()
	p := b.proc
	start := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		b.t.Fatalf("signal broker: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(limit):
		b.kill()
		b.t.Fatalf("broker did not exit within %v of %v", limit, sig)
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

// Restart starts the broker again on the same data directory and addresses.
func (b *broker) Restart() {
	b.t.Helper()
	select {
	case <-b.proc.exited:
	default:
		b.t.Fatal("Restart: broker still running")
	}
	b.t.Logf("previous broker run output:\n%s", b.proc.output.Tail(8<<10))
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		// The old process' sockets may linger briefly; retry on bind errors.
		if err = b.start(); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	b.t.Fatalf("restart broker: %v", err)
}

// exited reports whether the current broker process has exited.
func (b *broker) exited() bool {
	select {
	case <-b.proc.exited:
		return true
	default:
		return false
	}
}

func (b *broker) kill() {
	if b.proc == nil {
		return
	}
	select {
	case <-b.proc.exited:
		return
	default:
	}
	b.proc.cmd.Process.Kill()
	<-b.proc.exited
}

func (b *broker) cleanup() {
	if b.proc == nil {
		return
	}
	b.kill()
	if b.t.Failed() {
		b.t.Logf("broker output (last run):\n%s", b.proc.output.Tail(32<<10))
	}
}

// ProcStatus returns a field of /proc/<pid>/status in bytes (for kB fields).
func (b *broker) ProcStatus(field string) int64 {
	b.t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.Pid()))
	if err != nil {
		b.t.Fatalf("read proc status: %v", err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(field) + `:\s+(\d+) kB$`).FindSubmatch(data)
	if m == nil {
		b.t.Fatalf("no %s in /proc/%d/status", field, b.Pid())
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	return freeAddrOn(t, "127.0.0.1")
}

// freeAddrOn returns an address on host whose port was free a moment ago.
func freeAddrOn(t testing.TB, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("find free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer collects a child's output from two pipes at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// Tail returns at most the last n bytes written.
func (s *syncBuffer) Tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buf.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// ---- clients ----

// testCtx returns a context that ends with the test or after d.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newKgo returns a franz-go client for b, closed when the test ends.
func newKgo(t testing.TB, b *broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(b.Addr), kgo.RequestRetries(3)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("new kgo client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// uniqueTopic derives a topic name from the test name and a random suffix,
// so tests can share an external broker.
func uniqueTopic(t testing.TB, tag string) string {
	var rb [4]byte
	rand.Read(rb[:])
	name := regexp.MustCompile(`[^a-zA-Z0-9._-]+`).ReplaceAllString(t.Name()+"-"+tag, "_")
	if len(name) > 200 {
		name = name[:200]
	}
	return name + "-" + hex.EncodeToString(rb[:])
}

// createTopic creates a topic with the given partition count, replication 1.
func createTopic(t testing.TB, b *broker, partitions int32) string {
	t.Helper()
	return createNamedTopic(t, b, uniqueTopic(t, "t"), partitions)
}

func createNamedTopic(t testing.TB, b *broker, name string, partitions int32) string {
	t.Helper()
	adm := kadm.NewClient(newKgo(t, b))
	ctx := testCtx(t, 20*time.Second)
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	return name
}

// assertServing checks that a fresh kgo client can produce to and consume
// from the broker: used after throwing bad bytes at it.
func assertServing(t testing.TB, b *broker) {
	t.Helper()
	topic := createTopic(t, b, 1)
	cl := newKgo(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {0: kgo.NewOffset().AtStart()},
	}))
	ctx := testCtx(t, 20*time.Second)
	want := "still-serving"
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(want)}).FirstErr(); err != nil {
		t.Fatalf("broker no longer serves produce: %v", err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("broker no longer serves fetch: %v", err)
		}
		for _, e := range fs.Errors() {
			t.Logf("fetch error while checking broker health: %v", e.Err)
		}
		for _, r := range fs.Records() {
			if string(r.Value) != want {
				t.Fatalf("health check read %q, want %q", r.Value, want)
			}
			return
		}
	}
}

// ---- kfake child ----

// runKfakeChild serves kfake with the broker's command-line contract, so the
// harness can treat it like the real broker. It returns the exit code.
func runKfakeChild(args []string) int {
	fs := flag.NewFlagSet("kfake-broker", flag.ContinueOnError)
	fs.String("config", "", "ignored by the kfake stand-in")
	dataDir := fs.String("data-dir", "", "data directory")
	kafkaAddr := fs.String("kafka-addr", "127.0.0.1:9092", "Kafka listener")
	fs.String("advertised-kafka-addr", "", "ignored: kfake advertises its listener")
	httpAddr := fs.String("http-addr", "127.0.0.1:9644", "HTTP listener")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	_, portStr, err := net.SplitHostPort(*kafkaAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake child: bad --kafka-addr:", err)
		return 2
	}
	port, _ := strconv.Atoi(portStr)
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port)}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir), kfake.SyncWrites())
	}
	if v := os.Getenv("STREAMBUS_NUM_PARTITIONS"); v != "" {
		n, _ := strconv.Atoi(v)
		opts = append(opts, kfake.DefaultNumPartitions(n))
	}
	if os.Getenv("STREAMBUS_AUTO_CREATE_TOPICS_ENABLE") != "false" {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake child:", err)
		return 1
	}
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }
	mux.HandleFunc("/healthz", ok)
	mux.HandleFunc("/readyz", ok)
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "# kfake stand-in has no metrics\n")
	})
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		c.Close()
		fmt.Fprintln(os.Stderr, "kfake child:", err)
		return 1
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	fmt.Fprintf(os.Stderr, "kfake child: serving kafka on %v, http on %s\n", c.ListenAddrs(), ln.Addr())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	c.Close()
	return 0
}
