// Command streambus-broker runs a StreamBus broker. Run it with --help for
// the flags, configuration keys and environment variables.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/streambus/streambus/internal/config"
	"github.com/streambus/streambus/internal/server"
)

func main() { os.Exit(run()) }

func run() int {
	cfg, err := config.Load(os.Args[1:], os.LookupEnv)
	if errors.Is(err, config.ErrHelp) {
		fmt.Print(config.Usage())
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "streambus-broker:", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := server.Run(ctx, cfg, logger); err != nil {
		logger.Error("broker stopped", "err", err)
		return 1
	}
	return 0
}
