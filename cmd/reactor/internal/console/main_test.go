package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/reactor-alerts/reactor/cmd/reactor/internal/console"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bundle is a server with reactor's topology, a processor of group "ops"
// that fails alerts on alerts.fail.> permanently while failing is set, and
// the console on an httptest server of 127.0.0.1.
type bundle struct {
	t       *testing.T
	conn    *stream.Conn
	topo    stream.Topology
	console *console.Console
	srv     *httptest.Server
	logs    *logBuffer
	failing atomic.Bool
	handled atomic.Int64
	mu      sync.Mutex
	seen    map[string]int
}

func setup(t *testing.T) *bundle {
	t.Helper()
	return setupWith(t, console.Config{})
}

func setupWith(t *testing.T, cfg console.Config) *bundle {
	t.Helper()
	conn, topo := streamtest.NewTopology(t)
	b := &bundle{t: t, conn: conn, topo: topo, logs: &logBuffer{}, seen: map[string]int{}}
	b.failing.Store(true)
	cfg.JS, cfg.Topology, cfg.Server = conn.JS, topo, conn.ServerStatus
	cfg.Logger = slog.New(slog.NewTextHandler(b.logs, nil))
	if cfg.PageSize == 0 {
		cfg.PageSize = 20
	}
	if cfg.SampleInterval == 0 {
		cfg.SampleInterval = time.Millisecond // each overview samples the groups
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = 300 * time.Millisecond
	}
	c, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.console = c
	b.srv = httptest.NewServer(c)
	t.Cleanup(b.srv.Close)
	return b
}

// startProcessor runs group "ops" until the test ends.
func (b *bundle) startProcessor() {
	b.t.Helper()
	r := processor.NewRouter()
	r.On("alerts.>", func(_ context.Context, m *processor.Message) error {
		if b.failing.Load() && strings.HasPrefix(m.Subject(), "alerts.fail.") {
			return processor.Permanent(errors.New("disk on fire\nsecond line of the error"))
		}
		b.mu.Lock()
		b.seen[m.Subject()]++
		b.mu.Unlock()
		b.handled.Add(1)
		return nil
	})
	p, err := processor.New(b.conn.JS, r, processor.Config{Topology: b.topo, Group: "ops", Workers: 2, ShutdownTimeout: 5 * time.Second})
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	b.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.t.Errorf("processor: %v", err)
		}
	})
	streamtest.Eventually(b.t, 10*time.Second, p.Ready, "processor ready")
}

// send publishes an alert like `reactor send` does.
func (b *bundle) send(name, severity, summary string, labels map[string]string) {
	b.t.Helper()
	a := stream.NewAlert(name, summary)
	a.Severity, a.Labels = severity, labels
	data, err := json.Marshal(a)
	if err != nil {
		b.t.Fatal(err)
	}
	streamtest.Publish(b.t, b.conn, a.Subject, a.ID, data)
}

func (b *bundle) get(path string) (int, string) {
	b.t.Helper()
	resp, err := http.Get(b.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	buf, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.StatusCode, string(buf)
}

func (b *bundle) seenCount(subject string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen[subject]
}

type logBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// limitedConsole is another console on b's server whose pages read at most
// scanLimit sequences.
func (b *bundle) limitedConsole(t *testing.T, scanLimit int) *bundle {
	t.Helper()
	c, err := console.New(console.Config{JS: b.conn.JS, Topology: b.topo, PageSize: 5, ScanLimit: scanLimit})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return &bundle{t: t, conn: b.conn, topo: b.topo, console: c, srv: srv}
}
