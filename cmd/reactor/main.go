// Command reactor processes alerts on NATS JetStream: `reactor run` handles
// them, `reactor send` publishes one, and replay, dlq and status look after
// the history, the dead letters and the backlog. See `reactor --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp().RunContext(ctx, os.Args)
	stop()
	os.Exit(report(os.Stderr, err))
}
