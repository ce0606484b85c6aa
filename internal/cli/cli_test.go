package cli

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startCluster starts a one-broker kfake cluster on 127.0.0.1 and returns its
// address; it is closed when the test ends.
func startCluster(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

type result struct {
	stdout, stderr string
	code           int
}

// syncBuffer is a bytes.Buffer safe for the command's goroutines and the
// test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runCLI executes streambus-cli in-process against addr with stdin.
func runCLI(ctx context.Context, addr, stdin string, args ...string) result {
	var out, errOut syncBuffer
	env := Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut}
	code := Execute(ctx, env, append([]string{"-b", addr}, args...))
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// mustRun runs the CLI and fails the test unless it exits 0.
func mustRun(t *testing.T, addr, stdin string, args ...string) result {
	t.Helper()
	r := runCLI(t.Context(), addr, stdin, args...)
	if r.code != 0 {
		t.Fatalf("streambus-cli %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// produceDirect writes records with a kgo client, for tests that need exact
// timestamps or partitions the CLI does not let one choose.
func produceDirect(t *testing.T, addr string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestEnvBrokersDefault(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"))
	var out, errOut syncBuffer
	env := Env{
		Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string {
			if k == BrokersEnv {
				return addr
			}
			return ""
		},
	}
	if code := Execute(t.Context(), env, []string{"topic", "list"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "t ") {
		t.Fatalf("topic t not listed via %s:\n%s", BrokersEnv, out.String())
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	addr := "127.0.0.1:1" // never dialled: every case fails before connecting
	cases := [][]string{
		{"produce"},
		{"produce", "t", "--acks", "2"},
		{"produce", "t", "--acks", "1", "--idempotent"},
		{"produce", "t", "--compression", "brotli"},
		{"produce", "t", "--header", "novalue"},
		{"consume", "t", "--from", "yesterday"},
		{"consume", "t", "--from", "@-5"},
		{"consume", "t", "--format", "yaml"},
		{"consume", "t", "--format", "%x"},
		{"consume", "t", "--nosuchflag"},
		{"topic", "create", "t", "--partitions", "0"},
		{"topic", "create", "t", "--config", "=v"},
		{"topic", "list", "-o", "xml"},
		{"topic", "delete"},
		{"topic", "trim", "t"},
		{"topic", "trim", "t", "--before-offset", "1", "--before-timestamp", "0"},
		{"topic", "trim", "t", "--before-offset", "-1"},
		{"topic", "trim", "t", "--before-timestamp", "yesterday"},
		{"topic", "trim", "t", "--before-offset", "1", "--partitions", "-1"},
		{"topic", "trim", "t", "--before-offset", "1", "-o", "xml"},
		{"topic", "trim", "--before-offset", "1"},
		{"produce", "t", "--max-message-bytes", "100"},
		{"produce", "t", "--max-message-bytes", "2000000000"},
		{"bench", "--mode", "sideways"},
		{"bench", "--producers", "0"},
		{"--log-level", "loud", "topic", "list"},
	}
	for _, args := range cases {
		r := runCLI(t.Context(), addr, "", args...)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2\nstderr: %s", args, r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "streambus-cli: error:") {
			t.Errorf("%v: stderr lacks the error line: %q", args, r.stderr)
		}
	}
}

func TestCompletionAndHelp(t *testing.T) {
	r := mustRun(t, "127.0.0.1:1", "", "completion", "bash")
	if !strings.Contains(r.stdout, "streambus-cli") || !strings.Contains(r.stdout, "complete") {
		t.Fatalf("bash completion script looks wrong:\n%.300s", r.stdout)
	}
	r = mustRun(t, "127.0.0.1:1", "", "consume", "--help")
	for _, want := range []string{"--from", "@MS", "--format", "%T", "--timeout", "-n, --count"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("consume --help lacks %q", want)
		}
	}
}
