// Package streamtest starts real embedded JetStream servers for tests, one
// per test, the way net/http/httptest starts real HTTP servers.
package streamtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactor-alerts/reactor/stream"
)

// NewServer starts an embedded JetStream server with its store in a fresh
// t.TempDir(), listening on 127.0.0.1 on a free port, and returns a
// connection to it. Both are closed by t.Cleanup.
func NewServer(t testing.TB) *stream.Conn {
	t.Helper()
	return NewServerWith(t, stream.ServerConfig{})
}

// NewServerWith is NewServer with a config of the test's own. DataDir
// defaults to a fresh t.TempDir() and Port to -1 (a free port).
func NewServerWith(t testing.TB, cfg stream.ServerConfig) *stream.Conn {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Port == 0 {
		cfg.Port = -1
	}
	conn, err := stream.Open(context.Background(), stream.Config{Embedded: cfg})
	if err != nil {
		t.Fatalf("streamtest: start embedded server: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// NewTopology starts a server as NewServer does and creates the default
// topology on it.
func NewTopology(t testing.TB) (*stream.Conn, stream.Topology) {
	t.Helper()
	conn := NewServer(t)
	topo := stream.Topology{}.WithDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := stream.EnsureStreams(ctx, conn.JS, topo); err != nil {
		t.Fatalf("streamtest: ensure streams: %v", err)
	}
	return conn, topo
}

// Publish stores one message with the given id on subject and fails the test
// if it is not acknowledged.
func Publish(t testing.TB, conn *stream.Conn, subject, id string, data []byte) {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(nats.MsgIdHdr, id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := stream.NewPublisher(conn.JS, stream.PublisherConfig{}).Publish(ctx, msg); err != nil {
		t.Fatalf("streamtest: publish %s: %v", subject, err)
	}
}

// Eventually polls cond every 10ms until it holds, and fails the test if it
// does not within timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("streamtest: timed out after %s: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
