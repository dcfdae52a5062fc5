package processor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/embedded"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// Store damage: the embedded server's data dir copied while running, a
// message block of the alert stream truncated, the consumer's state deleted.
// In every case reactor must start (no crash loop), recreate what it needs,
// lose no alert the stream still holds, handle every new alert, and say in
// its log what happened.

// damageRig is an embedded server on a data dir of the test's choosing, with
// everything logged (nats-server's lines through stream's slog adapter, and
// the processor's) into one buffer.
type damageRig struct {
	t    *testing.T
	dir  string
	logs *logBuffer
	log  *slog.Logger
	conn *stream.Conn
	topo stream.Topology
}

func newDamageRig(t *testing.T, dir string) *damageRig {
	logs := &logBuffer{}
	return &damageRig{
		t:    t,
		dir:  dir,
		logs: logs,
		log:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		topo: stream.Topology{}.WithDefaults(),
	}
}

// open starts the server on the rig's dir; close stops it cleanly.
func (r *damageRig) open() *stream.Conn {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := embedded.Open(ctx, embedded.Config{DataDir: r.dir, DontListen: true}, stream.Config{Logger: r.log})
	if err != nil {
		r.t.Fatalf("start server on %s: %v\nlog:\n%s", r.dir, err, r.logs)
	}
	r.conn = conn
	r.t.Cleanup(r.close)
	return conn
}

func (r *damageRig) close() {
	if r.conn != nil {
		_ = r.conn.Close()
		r.conn = nil
	}
}

// process runs a processor, then calls then (which may publish, and returns
// the alerts to wait for, as a processor started before they come in sees
// them), waits until they are handled and the group's backlog is drained,
// and stops the processor.
func (r *damageRig) process(h *handledLog, then func() []string) {
	r.t.Helper()
	router := processor.NewRouter()
	router.On("alerts.>", h.process)
	cfg := reliabilityConfig(r.topo, h, r.log)
	_, stop := runProcessor(r.t, r.conn.JS, router, cfg)
	var want []string
	if then != nil {
		want = then()
	}
	streamtest.Eventually(r.t, 60*time.Second, func() error { return h.handledAll(want) }, "alerts handled")
	waitDrained(r.t, r.conn.JS, r.topo, "reactor", 60*time.Second)
	stop()
}

// requireLog fails the test unless the log has a line with every one of
// the parts.
func (r *damageRig) requireLog(parts ...string) {
	r.t.Helper()
	for _, line := range strings.Split(r.logs.String(), "\n") {
		found := true
		for _, p := range parts {
			found = found && strings.Contains(line, p)
		}
		if found {
			return
		}
	}
	r.t.Errorf("no log line with %q in:\n%s", parts, r.logs)
}

// publish stores n alerts with ids prefix-0 .. prefix-(n-1), and returns the
// ids.
func (r *damageRig) publish(prefix string, n int) []string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := stream.EnsureStreams(ctx, r.conn.JS, r.topo); err != nil {
		r.t.Fatalf("ensure streams: %v", err)
	}
	pub := stream.NewPublisher(r.conn.JS, stream.PublisherConfig{})
	ids := make([]string, n)
	for i := range n {
		msg := alertMsg(prefix, i)
		if _, err := pub.Publish(ctx, msg); err != nil {
			r.t.Fatalf("publish: %v", err)
		}
		ids[i] = msg.Header.Get("Nats-Msg-Id")
	}
	return ids
}

// TestStoreLiveCopy copies the data dir while the server runs and alerts are
// published and processed, then starts a second server on the copy: it must
// start, take the topology, handle what its copy of the stream holds past
// the consumer's position, and every new alert. The copy is not a snapshot:
// the consumer's state, copied after the messages, may be ahead of the
// copied stream, and would then skip the next alerts; reactor rewinds it.
func TestStoreLiveCopy(t *testing.T) {
	t.Parallel()
	n := streamtest.Scale(5000, 50_000)
	orig := newDamageRig(t, filepath.Join(t.TempDir(), "data"))
	orig.open()
	handled := newHandledLog()
	router := processor.NewRouter()
	router.On("alerts.>", handled.process)
	_, stop := runProcessor(t, orig.conn.JS, router, reliabilityConfig(orig.topo, handled, orig.log))

	// The publisher, paced at about 3000 alerts/s so that publishing goes
	// on while the copy is taken.
	var published atomic.Int64
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		pub := stream.NewPublisher(orig.conn.JS, stream.PublisherConfig{})
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := range n {
			if i%3 == 0 {
				<-tick.C
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := pub.Publish(ctx, alertMsg("live", i))
			cancel()
			if err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			published.Add(1)
		}
	}()

	// Copy once a fifth is handled, while publishing and processing go on.
	// Like a cp -r of a large store, the copy takes a while: the
	// consumer's state is copied after the stream has taken 100 more
	// alerts and the group has handled them.
	streamtest.Eventually(t, 60*time.Second, func() error { return handled.handledAtLeast(n / 5) }, "processing before the copy")
	copyDir := filepath.Join(t.TempDir(), "copy")
	atCopy, handledAtCopy := published.Load(), handled.unique()
	obsDir := filepath.Join(streamDir(orig.dir, orig.topo.Alerts), "obs")
	if err := copyTree(orig.dir, copyDir, func(path string) bool { return path == obsDir }); err != nil {
		t.Fatalf("copy data dir: %v", err)
	}
	streamtest.Eventually(t, 60*time.Second, func() error {
		want := min(int64(n), atCopy+100)
		if got := published.Load(); got < want {
			return fmt.Errorf("%d alerts published, want %d", got, want)
		}
		return handled.handledAtLeast(int(want))
	}, "publishing during the copy")
	if err := copyTree(obsDir, filepath.Join(streamDir(copyDir, orig.topo.Alerts), "obs"), nil); err != nil {
		t.Fatalf("copy consumer state: %v", err)
	}
	afterCopy := published.Load()
	<-pubDone
	streamtest.Eventually(t, 60*time.Second, func() error {
		if got := handled.unique(); got != n {
			return fmt.Errorf("%d distinct alerts handled, want %d", got, n)
		}
		return nil
	}, "original: alerts handled")
	waitDrained(t, orig.conn.JS, orig.topo, "reactor", 60*time.Second)
	stop()
	orig.close()

	cp := newDamageRig(t, copyDir)
	cp.open()
	cpAlerts := streamtest.StreamMsgs(cp.conn.JS, cp.topo.Alerts)
	// As `reactor run` does: the processor starts (and reads the streams)
	// before new alerts come in.
	again := newHandledLog()
	var extra []string
	cp.process(again, func() []string {
		extra = cp.publish("after-copy", 300)
		return extra
	})
	cp.requireLog("streams ready", fmt.Sprintf("alerts=%d", cpAlerts))
	rewound := strings.Contains(cp.logs.String(), "consumer was ahead of the stream")
	t.Logf("live copy: %d alerts; copied while %d-%d were published and %d handled; the copy started with %d alerts, consumer rewound: %v; handled on the copy %d (all 300 new ones among them; the others a second time: the original handled them too)",
		n, atCopy, afterCopy, handledAtCopy, cpAlerts, rewound, again.unique())
	for _, w := range serverWarnings(cp.logs.String()) {
		t.Logf("copy's server said: %s", w)
	}
}

// TestStoreTruncatedBlock truncates the alert stream's last message block
// after a clean shutdown, every alert handled: the server and the processor
// must start, the alerts lost with the block must be reported (the server's
// warnings, and the stream's count in reactor's start-up line), and the new
// alerts, stored under sequences the group had already passed, must not be
// skipped.
func TestStoreTruncatedBlock(t *testing.T) {
	t.Parallel()
	n := streamtest.Scale(1000, 10_000)
	r := newDamageRig(t, filepath.Join(t.TempDir(), "data"))
	r.open()
	first := newHandledLog()
	var ids []string
	r.process(first, func() []string { ids = r.publish("trunc", n); return ids })
	r.close()

	blocks, err := filepath.Glob(filepath.Join(streamDir(r.dir, r.topo.Alerts), "msgs", "*.blk"))
	if err != nil || len(blocks) == 0 {
		t.Fatalf("no message blocks for %s (err %v)", r.topo.Alerts, err)
	}
	sort.Strings(blocks)
	last := blocks[len(blocks)-1]
	fi, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(last, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	t.Logf("truncated %s from %d to %d bytes", filepath.Base(last), fi.Size(), fi.Size()/2)

	r.logs = &logBuffer{}
	r.log = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r.open()
	kept := streamtest.StreamMsgs(r.conn.JS, r.topo.Alerts)
	h := newHandledLog()
	var after []string
	r.process(h, func() []string { after = r.publish("after", 100); return after }) // alerts published after the repair
	r.requireLog("streams ready", fmt.Sprintf("alerts=%d", kept))
	stored := streamtest.MsgIDs(t, r.conn.JS, r.topo.Alerts)
	lost := 0
	for _, id := range ids {
		if stored[id] == 0 {
			lost++
		}
	}
	warnings := serverWarnings(r.logs.String())
	if lost > 0 && len(warnings) == 0 {
		t.Errorf("%d alerts lost with the block and nothing in the log says so:\n%s", lost, r.logs)
	}
	if int64(n-lost) != kept {
		t.Errorf("the stream holds %d alerts after the repair, %d of the %d published: the count in the log is off", kept, n-lost, n)
	}
	t.Logf("truncated block: %d alerts handled, then %d lost with the block (%d kept), consumer rewound: %v; of 100 new alerts %d handled, old ones handled again %d",
		n, lost, kept, strings.Contains(r.logs.String(), "consumer was ahead of the stream"), len(after)-len(h.missing(after)), h.unique()-(len(after)-len(h.missing(after))))
	for _, w := range warnings {
		t.Logf("server said: %s", w)
	}
}

// TestStoreConsumerStateDeleted deletes the consumer's state after a clean
// shutdown with alerts still queued: the processor must recreate the
// consumer and handle every queued alert. The recreated group is the
// stream's only one, so it starts with every alert kept (auto): the handled
// ones come back too.
func TestStoreConsumerStateDeleted(t *testing.T) {
	t.Parallel()
	n := streamtest.Scale(1000, 10_000)
	r := newDamageRig(t, filepath.Join(t.TempDir(), "data"))
	r.open()
	ids := r.publish("obs", n)

	// Handle half, hold the rest back, then stop with them queued.
	first := newHandledLog()
	var calls atomic.Int64
	router := processor.NewRouter()
	router.On("alerts.>", func(ctx context.Context, m *processor.Message) error {
		if calls.Add(1) > int64(n/2) {
			return processor.Retry(time.Hour, errors.New("held back for the test"))
		}
		return first.process(ctx, m)
	})
	_, stop := runProcessor(t, r.conn.JS, router, reliabilityConfig(r.topo, first, r.log))
	streamtest.Eventually(t, 30*time.Second, func() error { return first.handledAtLeast(n / 2) }, "first half handled")
	stop()
	pending, ackPending, _ := streamtest.ConsumerPending(r.conn.JS, r.topo.Alerts, "reactor")
	queued := int64(pending) + int64(ackPending)
	r.close()
	if queued <= 0 {
		t.Fatalf("nothing queued at shutdown (%d): the test needs a backlog", queued)
	}

	obs := filepath.Join(streamDir(r.dir, r.topo.Alerts), "obs", "reactor")
	if _, err := os.Stat(obs); err != nil {
		t.Fatalf("consumer state dir: %v", err)
	}
	if err := os.RemoveAll(obs); err != nil {
		t.Fatal(err)
	}

	r.logs = &logBuffer{}
	r.log = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r.open()
	second := newHandledLog()
	r.process(second, nil)
	r.requireLog("consumer not found: creating it", "start=auto")
	var lost []string
	for _, id := range ids {
		if first.missing([]string{id}) != nil && second.missing([]string{id}) != nil {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d queued alerts lost with the consumer state, first %v", len(lost), lost[:min(5, len(lost))])
	}
	again := 0
	for _, id := range ids {
		if first.missing([]string{id}) == nil && second.missing([]string{id}) == nil {
			again++
		}
	}
	t.Logf("consumer state deleted: %d alerts, %d handled before, %d queued at shutdown, %d handled after the consumer was recreated (%d of them a second time), lost %d",
		n, first.unique(), queued, second.unique(), again, len(lost))
	for _, w := range serverWarnings(r.logs.String()) {
		t.Logf("server said: %s", w)
	}
}
