package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/reactor-alerts/reactor/cmd/reactor/internal/console"
	"github.com/reactor-alerts/reactor/stream"
)

// newConsole is the web console the HTTP listener serves at "/" (behind its
// token, like ingest): it reads and acts through conn, and samples the
// groups for its chart until ctx is done.
func newConsole(ctx context.Context, conn *stream.Conn, topo stream.Topology, cfg httpConfig, logger *slog.Logger) (http.Handler, error) {
	con, err := console.New(console.Config{
		JS:       conn.JS,
		Topology: topo,
		Server:   conn.ServerStatus,
		Logger:   logger.With("component", "console"),
		Rules:    cfg.rules,
		Group:    cfg.group,
	})
	if err != nil {
		return nil, err
	}
	go func() { _ = con.Run(ctx) }()
	return con, nil
}
