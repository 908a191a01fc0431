package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Main runs an App as a command does: logs to cfg.Logger (nil: text on
// stderr), tells stdout where to publish and play, and stops gracefully
// on SIGINT or SIGTERM. It returns the exit code.
func Main(cfg Config, stdout io.Writer) int {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	log := cfg.Logger
	app, err := New(cfg)
	if err != nil {
		log.Error("start", "error", err)
		return 1
	}
	publish, play := app.URLs()
	fmt.Fprintf(stdout, "publish:   %s\nplay:      %s\n", publish, play)
	if cfg.Demo {
		fmt.Fprintf(stdout, "demo:      %s/live/%s/index.m3u8\n", app.PlayBase(), DemoStream)
		fmt.Fprintf(stdout, "watch:     %s/?stream=%s\n", app.PlayBase(), DemoStream)
	} else {
		fmt.Fprintf(stdout, "watch:     %s/\n", app.PlayBase())
	}
	fmt.Fprintf(stdout, "dashboard: %s/dashboard\n", app.PlayBase())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx); err != nil {
		log.Error("run", "error", err)
		return 1
	}
	return 0
}
