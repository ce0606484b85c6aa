// Command streambus-cli produces, consumes, administers and benchmarks a
// StreamBus (Kafka-protocol) cluster. All logic lives in internal/cli; main
// only wires the process's streams and signals.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/streambus/streambus/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal cancels the command, restore default handling
	// so a second Ctrl-C kills a command that is slow to stop.
	context.AfterFunc(ctx, stop)
	code := cli.Execute(ctx, cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}
