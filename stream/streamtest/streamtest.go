// Package streamtest starts real embedded JetStream servers for tests, one
// per test, the way net/http/httptest starts real HTTP servers.
package streamtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/embedded"
)

// NewServer starts an embedded JetStream server with its store in a fresh
// t.TempDir(), listening on 127.0.0.1 on a free port, and returns a
// connection to it. Both are closed by t.Cleanup.
func NewServer(t testing.TB) *stream.Conn {
	t.Helper()
	return NewServerWith(t, embedded.Config{})
}

// NewServerWith is NewServer with a config of the test's own. DataDir
// defaults to a fresh t.TempDir() and Port to -1 (a free port). The
// connection's InProcess is the *embedded.Server.
func NewServerWith(t testing.TB, cfg embedded.Config) *stream.Conn {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Port == 0 {
		cfg.Port = -1
	}
	conn, err := embedded.Open(context.Background(), cfg, stream.Config{Name: t.Name()})
	if err != nil {
		t.Fatalf("streamtest: start embedded server: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Connect opens a client connection by URL (a comma-separated list for a
// cluster), named after the test and closed by t.Cleanup.
func Connect(t testing.TB, url string) *stream.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := stream.Open(ctx, stream.Config{URL: url, Name: t.Name()})
	if err != nil {
		t.Fatalf("streamtest: connect to %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// NewTopology starts a server as NewServer does and creates the default
// topology on it.
func NewTopology(t testing.TB) (*stream.Conn, stream.Topology) {
	t.Helper()
	return NewTopologyWith(t, stream.Topology{})
}

// NewTopologyWith starts a server as NewServer does and creates topo (with
// its defaults) on it: a size limit, other names.
func NewTopologyWith(t testing.TB, topo stream.Topology) (*stream.Conn, stream.Topology) {
	t.Helper()
	conn := NewServer(t)
	topo = topo.WithDefaults()
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

// Swallow subscribes a plain subscriber to subject that takes every message
// and never answers, as a stream or consumer leader that steps down or dies
// drops what it has not answered. The channel gets a value for each message
// taken (up to 100 unread). The subscription ends with the test.
func Swallow(t testing.TB, conn *stream.Conn, subject string) <-chan struct{} {
	t.Helper()
	swallowed := make(chan struct{}, 100)
	sub, err := conn.NC.Subscribe(subject, func(*nats.Msg) {
		select {
		case swallowed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatalf("streamtest: subscribe %s: %v", subject, err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := conn.NC.Flush(); err != nil {
		t.Fatalf("streamtest: flush: %v", err)
	}
	return swallowed
}

// Eventually calls cond every 10ms until it succeeds, and fails the test if
// it has not within timeout. cond is a func() error, as nats.go's checkFor
// takes: it succeeds by returning nil, and the failure reports the last error
// it returned, which says what was still wrong ("3 of 5 alerts acked"), not
// only that time ran out. msgAndArgs, a format and its arguments, say what
// was awaited.
//
// A func() bool is accepted too, for the tests not yet converted: it
// succeeds by returning true, and the failure has only msgAndArgs to say.
func Eventually[C func() error | func() bool](t testing.TB, timeout time.Duration, cond C, msgAndArgs ...any) {
	t.Helper()
	var check func() error
	switch c := any(cond).(type) {
	case func() error:
		check = c
	case func() bool:
		check = func() error {
			if c() {
				return nil
			}
			return errors.New("condition still false")
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("streamtest: timed out after %s%s: %v", timeout, waitingFor(msgAndArgs), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitingFor formats Eventually's msgAndArgs as " waiting for <message>".
func waitingFor(msgAndArgs []any) string {
	if len(msgAndArgs) == 0 {
		return ""
	}
	format, ok := msgAndArgs[0].(string)
	if !ok {
		return " waiting for " + fmt.Sprint(msgAndArgs...)
	}
	return " waiting for " + fmt.Sprintf(format, msgAndArgs[1:]...)
}

// SeedFiles adds the content of every file matching pattern to f's seed
// corpus, and fails f if none does.
func SeedFiles(f *testing.F, pattern string) {
	f.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		f.Fatalf("streamtest: no seed files match %s", pattern)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// Fill publishes messages of size bytes on subject until the stream that
// stores them is full (stream.ErrStoreFull), and returns how many it stored;
// it fails the test on another error, or when more than max fit.
func Fill(t testing.TB, conn *stream.Conn, subject string, size, max int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{})
	data := make([]byte, size)
	for i := range data {
		data[i] = 'x'
	}
	for i := 0; ; i++ {
		msg := nats.NewMsg(subject)
		msg.Data = data
		msg.Header.Set(nats.MsgIdHdr, fmt.Sprintf("fill-%s-%d", subject, i))
		_, err := pub.Publish(ctx, msg)
		if errors.Is(err, stream.ErrStoreFull) {
			return i
		}
		if err != nil || i > max {
			t.Fatalf("streamtest: fill %s: %d messages, %v", subject, i, err)
		}
	}
}
