package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BrokersEnv is the environment variable that supplies the default for
// --brokers when the flag is not given.
const BrokersEnv = "STREAMBUS_BROKERS"

// defaultBrokers is used when neither --brokers nor STREAMBUS_BROKERS is set.
const defaultBrokers = "localhost:9092"

// Env is everything a command may touch outside its arguments. The zero value
// of a field means "nothing": a nil Stdin reads as empty, nil writers discard,
// a nil Getenv sees no variables. main wires the real process streams.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv looks up environment variables (os.Getenv in main).
	Getenv func(string) string
}

func (e Env) withDefaults() Env {
	if e.Stdin == nil {
		e.Stdin = strings.NewReader("")
	}
	if e.Stdout == nil {
		e.Stdout = io.Discard
	}
	if e.Stderr == nil {
		e.Stderr = io.Discard
	}
	if e.Getenv == nil {
		e.Getenv = func(string) string { return "" }
	}
	return e
}

// usageError marks an error in the command line itself, which exits 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// Execute runs streambus-cli with args (without the program name) and returns
// the process exit code. Errors are printed to env.Stderr. ctx cancellation is
// how a signal reaches a running command.
func Execute(ctx context.Context, env Env, args []string) int {
	env = env.withDefaults()
	root := NewRootCommand(env)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(env.Stderr, "streambus-cli: error: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(env.Stderr, "Run '%s --help' for usage.\n", commandPathFor(root, args))
		return 2
	}
	return 1
}

// commandPathFor names the (sub)command args selects, for the usage hint.
func commandPathFor(root *cobra.Command, args []string) string {
	c, _, err := root.Find(args)
	if err != nil || c == nil {
		return root.CommandPath()
	}
	return c.CommandPath()
}

// globalOptions are the persistent flags every subcommand sees.
type globalOptions struct {
	brokers        []string
	clientID       string
	logLevel       string
	requestTimeout time.Duration
}

// app is one invocation's state: the environment and the parsed global flags.
type app struct {
	env  Env
	opts globalOptions
}

// NewRootCommand builds the streambus-cli command tree bound to env. Each call
// returns an independent tree, so concurrent invocations share nothing.
func NewRootCommand(env Env) *cobra.Command {
	env = env.withDefaults()
	a := &app{env: env}

	brokersDefault := defaultBrokers
	if v := strings.TrimSpace(env.Getenv(BrokersEnv)); v != "" {
		brokersDefault = v
	}

	root := &cobra.Command{
		Use:   "streambus-cli",
		Short: "Produce, consume, administer and benchmark a StreamBus (Kafka-protocol) cluster",
		Long: `streambus-cli talks to a StreamBus cluster, or any broker speaking the Kafka
protocol, to produce and consume records, manage topics and run benchmarks.

Records and results are written to stdout; progress, summaries and errors to
stderr. Exit status: 0 success, 1 failure, 2 invalid command line.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.validateGlobal()
		},
	}
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	pf := root.PersistentFlags()
	pf.StringSliceVarP(&a.opts.brokers, "brokers", "b", splitList(brokersDefault),
		"bootstrap brokers, host:port, comma-separated or repeated (env "+BrokersEnv+")")
	pf.StringVar(&a.opts.clientID, "client-id", "streambus-cli", "client.id sent to the brokers")
	pf.StringVar(&a.opts.logLevel, "log-level", "none",
		"client library log level written to stderr: none|error|warn|info|debug")
	pf.DurationVar(&a.opts.requestTimeout, "request-timeout", 30*time.Second,
		"how long admin requests wait for the cluster, and how long produce waits for a record to be acknowledged")

	root.AddCommand(
		a.newProduceCommand(),
		a.newConsumeCommand(),
		a.newTopicCommand(),
		a.newGroupCommand(),
		a.newBenchCommand(),
	)
	return root
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (a *app) validateGlobal() error {
	var brokers []string
	for _, b := range a.opts.brokers {
		brokers = append(brokers, splitList(b)...)
	}
	if len(brokers) == 0 {
		return usageErrorf("--brokers: at least one broker is required")
	}
	a.opts.brokers = brokers
	if _, err := parseLogLevel(a.opts.logLevel); err != nil {
		return usageError{err}
	}
	if a.opts.requestTimeout <= 0 {
		return usageErrorf("--request-timeout must be positive, got %v", a.opts.requestTimeout)
	}
	return nil
}

func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "none", "":
		return levelNone, nil
	case "error":
		return slog.LevelError, nil
	case "warn":
		return slog.LevelWarn, nil
	case "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	}
	return 0, fmt.Errorf("--log-level: unknown level %q (want none|error|warn|info|debug)", s)
}

// levelNone is above every slog level, so nothing is logged.
const levelNone = slog.Level(1 << 20)

// newClient builds a kgo client with the global options plus opts. The caller
// owns it and must Close it.
func (a *app) newClient(opts ...kgo.Opt) (*kgo.Client, error) {
	level, _ := parseLogLevel(a.opts.logLevel)
	base := []kgo.Opt{
		kgo.SeedBrokers(a.opts.brokers...),
		kgo.ClientID(a.opts.clientID),
		kgo.WithLogger(newKgoLogger(slog.New(slog.NewTextHandler(a.env.Stderr, &slog.HandlerOptions{Level: level})), level)),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	return cl, nil
}

// newAdmin builds a kgo client wrapped in kadm. Closing the returned kadm
// client closes the underlying kgo client.
func (a *app) newAdmin() (*kadm.Client, error) {
	cl, err := a.newClient()
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(a.opts.requestTimeout / time.Millisecond))
	return adm, nil
}

// kgoLogger adapts kgo's logging interface to slog, so client diagnostics
// share one format and destination (stderr) with the rest of the CLI.
type kgoLogger struct {
	l     *slog.Logger
	level kgo.LogLevel
}

func newKgoLogger(l *slog.Logger, level slog.Level) kgo.Logger {
	kl := kgo.LogLevelNone
	switch {
	case level == levelNone:
	case level <= slog.LevelDebug:
		kl = kgo.LogLevelDebug
	case level <= slog.LevelInfo:
		kl = kgo.LogLevelInfo
	case level <= slog.LevelWarn:
		kl = kgo.LogLevelWarn
	default:
		kl = kgo.LogLevelError
	}
	return &kgoLogger{l: l, level: kl}
}

func (k *kgoLogger) Level() kgo.LogLevel { return k.level }

func (k *kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var sl slog.Level
	switch level {
	case kgo.LogLevelError:
		sl = slog.LevelError
	case kgo.LogLevelWarn:
		sl = slog.LevelWarn
	case kgo.LogLevelInfo:
		sl = slog.LevelInfo
	default:
		sl = slog.LevelDebug
	}
	k.l.Log(context.Background(), sl, msg, keyvals...)
}

// exactArgs is cobra.ExactArgs whose failure is a usage error (exit 2).
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("expected %s, got %d argument(s)", what, len(args))
		}
		return nil
	}
}

// minArgs is cobra.MinimumNArgs whose failure is a usage error (exit 2).
func minArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < n {
			return usageErrorf("expected %s, got %d argument(s)", what, len(args))
		}
		return nil
	}
}
