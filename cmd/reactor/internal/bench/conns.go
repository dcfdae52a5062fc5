package bench

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// sideConns are the JetStream contexts of the two sides, each side on
// connections of its own, one per process (Config.Processes): reactor's,
// the first of which also reads the DLQ streams and carries the Publisher
// shared by every reactor phase, and the raw baseline's (none without
// Config.Raw).
type sideConns struct {
	reactor []jetstream.JetStream
	pub     *stream.Publisher
	raw     []jetstream.JetStream
}

// openSides opens the connections of both sides to the server conn reaches
// (conn is the first of reactor's). close closes those it opened.
func openSides(ctx context.Context, cfg Config, conn *stream.Conn) (sides sideConns, close func(), err error) {
	var closers []func()
	close = func() {
		for _, c := range closers {
			c()
		}
	}
	defer func() {
		if err != nil {
			close()
		}
	}()
	sc := cfg.Conn
	sc.InProcess, sc.OwnInProcess, sc.Logger = conn.InProcess, false, cfg.Logger
	sides.reactor = []jetstream.JetStream{conn.JS}
	for p := 1; p < cfg.Processes; p++ {
		sc.Name = fmt.Sprintf("reactor-bench-%d", p+1)
		c, err := stream.Open(ctx, sc)
		if err != nil {
			return sides, close, fmt.Errorf("bench: %w", err)
		}
		closers = append(closers, func() { _ = c.Close() })
		sides.reactor = append(sides.reactor, c.JS)
	}
	sides.pub = stream.NewPublisher(conn.JS, stream.PublisherConfig{})
	if !cfg.Raw {
		return sides, close, nil
	}
	for range cfg.Processes {
		nc, js, err := dialRaw(sc)
		if err != nil {
			return sides, close, err
		}
		closers = append(closers, func() { drain(nc) })
		sides.raw = append(sides.raw, js)
	}
	return sides, close, nil
}

// drain drains nc and waits until it is closed: its last acks are sent.
func drain(nc *nats.Conn) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if nc.Drain() != nil {
		nc.Close()
		return
	}
	<-closed
}
