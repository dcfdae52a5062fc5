package processor_test

// Helpers shared by the reliability tests (failover, publisher under failure,
// store damage): what was handled, what was acknowledged by the publisher,
// and a processor run that the test can stop and restart.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// handledLog records every alert the handler saw, by Nats-Msg-Id, and the
// acks the server confirmed (the processor runs with DoubleAck).
type handledLog struct {
	mu    sync.Mutex
	seen  map[string]int
	calls int
	acks  atomic.Int64
}

func newHandledLog() *handledLog { return &handledLog{seen: make(map[string]int)} }

func (h *handledLog) process(_ context.Context, m *processor.Message) error {
	h.mu.Lock()
	h.seen[m.ID()]++
	h.calls++
	h.mu.Unlock()
	return nil
}

func (h *handledLog) onOutcome(r processor.Result) {
	if r.Outcome == processor.OutcomeAck && r.SettleErr == nil {
		h.acks.Add(1)
	}
}

// missing lists the ids in want that were never handled, sorted.
func (h *handledLog) missing(want []string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, id := range want {
		if h.seen[id] == 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// duplicates is the number of handler calls beyond the first per alert.
func (h *handledLog) duplicates() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls - len(h.seen)
}

func (h *handledLog) unique() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

// handledAll is nil once every id in want was handled, and otherwise says
// how many were not (for Eventually).
func (h *handledLog) handledAll(want []string) error {
	if missing := h.missing(want); len(missing) > 0 {
		return fmt.Errorf("%d of %d alerts not handled, first %v", len(missing), len(want), missing[:min(5, len(missing))])
	}
	return nil
}

// handledAtLeast is nil once n distinct alerts were handled, and otherwise
// says how many were (for Eventually).
func (h *handledLog) handledAtLeast(n int) error {
	if got := h.unique(); got < n {
		return fmt.Errorf("%d distinct alerts handled, want %d", got, n)
	}
	return nil
}

// ackedLog records the ids whose publish returned a PubAck.
type ackedLog struct {
	mu        sync.Mutex
	ids       []string
	failed    int
	lastError error // of the last publish that failed
}

func (a *ackedLog) add(id string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.failed++
		a.lastError = err
		return
	}
	a.ids = append(a.ids, id)
}

// lastErr is the error of the last publish that failed, nil if none did.
func (a *ackedLog) lastErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastError
}

func (a *ackedLog) snapshot() (ids []string, failed int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.ids...), a.failed
}

// alertMsg is alert i of a test run, with its id.
func alertMsg(prefix string, i int) *nats.Msg {
	msg := nats.NewMsg("alerts.test")
	msg.Data = []byte(fmt.Sprintf(`{"n":%d}`, i))
	msg.Header.Set(nats.MsgIdHdr, fmt.Sprintf("%s-%d", prefix, i))
	return msg
}

// reliabilityConfig is a processor config for the reliability tests: the
// server confirms each ack (so an ack lost to a failover is counted), and
// an unconfirmed delivery comes back after a few seconds.
func reliabilityConfig(topo stream.Topology, h *handledLog, log *slog.Logger) processor.Config {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return processor.Config{
		Topology:        topo,
		Workers:         4,
		AckWait:         3 * time.Second,
		MaxDeliver:      100, // a failover is not the handler's fault
		BackoffBase:     10 * time.Millisecond,
		BackoffMax:      100 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
		DoubleAck:       true,
		Logger:          log,
		OnOutcome:       h.onOutcome,
	}
}

// runProcessor runs a processor on js until stop is called or the test ends.
func runProcessor(t *testing.T, js jetstream.JetStream, h processor.Handler, cfg processor.Config) (p *processor.Processor, stop func()) {
	t.Helper()
	p, err := processor.New(js, h, cfg)
	if err != nil {
		t.Fatalf("new processor: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	streamtest.Eventually(t, 30*time.Second, func() error {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("processor stopped at start: %v", err)
		default:
		}
		if !p.Ready() {
			return errors.New("not ready")
		}
		return nil
	}, "processor to bind its consumer")
	return p, stop
}

// waitDrained waits until the group's consumer owes nothing: no message
// undelivered, no delivery unacknowledged.
func waitDrained(t *testing.T, js jetstream.JetStream, topo stream.Topology, group string, timeout time.Duration) {
	t.Helper()
	topo = topo.WithDefaults()
	streamtest.Eventually(t, timeout, func() error {
		pending, ackPending, ok := streamtest.ConsumerPending(js, topo.Alerts, group)
		if !ok || pending != 0 || ackPending != 0 {
			return fmt.Errorf("consumer pending %d, ack pending %d, want 0 and 0 (info ok: %v)", pending, ackPending, ok)
		}
		return nil
	}, "group %s drained", group)
}

// logBuffer is a concurrency-safe buffer for slog output.
type logBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// has is nil once the log holds substr, and otherwise shows the log (for
// Eventually).
func (b *logBuffer) has(substr string) error {
	if s := b.String(); !strings.Contains(s, substr) {
		return fmt.Errorf("no log line with %q in:\n%s", substr, s)
	}
	return nil
}

// streamDir is where the file store keeps a stream.
func streamDir(dataDir, name string) string {
	return filepath.Join(dataDir, "jetstream", streamtest.Account, "streams", name)
}

// serverWarnings are the lines nats-server logged at warning level or above.
func serverWarnings(logs string) []string {
	var out []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "msg=nats-server") && (strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR")) {
			out = append(out, line)
		}
	}
	return out
}

// copyTree copies the files under src to dst, as `cp -r` of a live data dir
// would: files that vanish meanwhile are skipped, files being written are
// copied as they are. Directories for which skip holds are left out.
func copyTree(src, dst string, skip func(path string) bool) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() && skip != nil && skip(path) {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
