package processor_test

import (
	"context"
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
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// Store damage: the embedded server's data dir copied while running,
// a message block of the work queue truncated, the consumer's state deleted.
// In every case reactor must start (no crash loop), recreate what it needs,
// lose no alert that is still queued, and say in its log what happened.

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
	conn, err := stream.Open(ctx, stream.Config{
		Logger:   r.log,
		Embedded: stream.ServerConfig{DataDir: r.dir, DontListen: true, Logger: r.log},
	})
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
// them), waits until they are handled and the work queue is drained, and
// stops the processor. (An empty work queue alone may only mean the work
// stream has not sourced the history yet.)
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
	streamtest.Eventually(r.t, 60*time.Second, func() bool { return len(h.missing(want)) == 0 }, "alerts not handled")
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
// start, take the topology, process what its copy holds and new alerts.
func TestStoreLiveCopy(t *testing.T) {
	t.Parallel()
	n := streamtest.Scale(5000, 50_000)
	orig := newDamageRig(t, filepath.Join(t.TempDir(), "data"))
	orig.open()
	handled := newHandledLog()
	router := processor.NewRouter()
	// The handlers hold still during the copy, so that the work queue is
	// not empty: the test then knows where the copy's sourcing resumes.
	var holding atomic.Bool
	release := make(chan struct{})
	router.On("alerts.>", func(ctx context.Context, m *processor.Message) error {
		if holding.Load() {
			<-release
		}
		return handled.process(ctx, m)
	})
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
	// Like a cp -r of a large store, the copy takes a while: the work
	// stream's files are copied after the history has taken 100 more
	// alerts (and the work stream has sourced them).
	streamtest.Eventually(t, 60*time.Second, func() bool { return handled.unique() >= n/5 }, "processing before the copy")
	holding.Store(true)
	copyDir := filepath.Join(t.TempDir(), "copy")
	atCopy, handledAtCopy := published.Load(), handled.unique()
	workDir := streamDir(orig.dir, orig.topo.Work)
	if err := copyTree(orig.dir, copyDir, func(path string) bool { return path == workDir }); err != nil {
		t.Fatalf("copy data dir: %v", err)
	}
	streamtest.Eventually(t, 60*time.Second, func() bool {
		return published.Load() >= min(int64(n), atCopy+100) && lastSourced(t, orig.conn, orig.topo) >= uint64(min(int64(n), atCopy+100))
	}, "publishing during the copy")
	if err := copyTree(workDir, streamDir(copyDir, orig.topo.Work), nil); err != nil {
		t.Fatalf("copy work stream: %v", err)
	}
	afterCopy := published.Load()
	close(release)
	holding.Store(false)
	<-pubDone
	streamtest.Eventually(t, 60*time.Second, func() bool { return handled.unique() == n }, "original: alerts not handled")
	waitDrained(t, orig.conn.JS, orig.topo, "reactor", 60*time.Second)
	stop()
	orig.close()

	cp := newDamageRig(t, copyDir)
	cp.open()
	cpHistory := streamtest.StreamMsgs(cp.conn.JS, cp.topo.History)
	cpBacklog := streamtest.StreamMsgs(cp.conn.JS, cp.topo.Work)
	// The copy is not a snapshot: the work stream, copied after the
	// history, may have sourced alerts the copied history lacks. The server
	// then skips that many new alerts when sourcing; reactor must say so.
	gap := max(0, int(lastSourced(t, cp.conn, cp.topo))-int(cpHistory))
	// As `reactor run` does: the processor starts (and reads the streams)
	// before new alerts come in.
	again := newHandledLog()
	var extra []string
	cp.process(again, func() []string {
		extra = cp.publish("after-copy", 300)
		return extra[min(gap, len(extra)):]
	})
	skipped, delivered := extra[:min(gap, len(extra))], extra[min(gap, len(extra)):]
	cp.requireLog("streams ready", fmt.Sprintf("work_backlog=%d", cpBacklog))
	if got := int64(again.unique() - len(delivered)); got < cpBacklog {
		t.Errorf("the copy's backlog was %d alerts, %d handled", cpBacklog, got)
	}
	if missing := again.missing(extra); len(missing) != len(skipped) {
		t.Errorf("%d new alerts not handled, want the %d the copy's work stream skips", len(missing), len(skipped))
	}
	if len(skipped) > 0 {
		cp.requireLog("level=ERROR", "work queue is ahead of the history", fmt.Sprintf("alerts_skipped=%d", gap))
		if cpBacklog == 0 {
			t.Errorf("the copy's work queue is empty: the test cannot tell where sourcing resumes")
		}
		// What the log says to do: replay them from the history.
		replayed := newHandledLog()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := processor.Replay(ctx, cp.conn.JS, processor.HandlerFunc(replayed.process),
			processor.ReplayConfig{Topology: cp.topo, StartSeq: uint64(cpHistory) + 1}); err != nil {
			t.Fatalf("replay: %v", err)
		}
		if missing := replayed.missing(skipped); len(missing) > 0 {
			t.Errorf("replay did not find %d skipped alerts: %v", len(missing), missing)
		}
	}
	t.Logf("live copy: %d alerts; copied while %d-%d were published and %d handled; the copy started with history %d, backlog %d (handled again: the original handled them too); of 300 new alerts %d handled, %d skipped by the copy's sourcing (logged, recovered by replay); duplicates on the copy %d",
		n, atCopy, afterCopy, handledAtCopy, cpHistory, cpBacklog, len(delivered), len(skipped), again.duplicates())
	for _, w := range serverWarnings(cp.logs.String()) {
		t.Logf("copy's server said: %s", w)
	}
}

// TestStoreTruncatedBlock truncates the work queue's last message block after
// a clean shutdown: the server and the processor must start, the loss must
// be logged, and every alert is still in the history, where replay finds it.
func TestStoreTruncatedBlock(t *testing.T) {
	t.Parallel()
	n := streamtest.Scale(1000, 10_000)
	r := newDamageRig(t, filepath.Join(t.TempDir(), "data"))
	r.open()
	ids := r.publish("trunc", n)
	streamtest.Eventually(t, 10*time.Second, func() bool { return streamtest.StreamMsgs(r.conn.JS, r.topo.Work) == int64(n) }, "work queue filled")
	r.close()

	blocks, err := filepath.Glob(filepath.Join(streamDir(r.dir, r.topo.Work), "msgs", "*.blk"))
	if err != nil || len(blocks) == 0 {
		t.Fatalf("no message blocks for %s (err %v)", r.topo.Work, err)
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
	backlog := streamtest.StreamMsgs(r.conn.JS, r.topo.Work)
	h := newHandledLog()
	r.process(h, func() []string { return r.publish("after", 100) }) // alerts published after the repair too
	r.requireLog("streams ready", fmt.Sprintf("work_backlog=%d", backlog))
	history := streamtest.MsgIDs(t, r.conn.JS, r.topo.History)
	lostFromWork := h.missing(ids)
	for _, id := range lostFromWork {
		if history[id] == 0 {
			t.Errorf("%s lost from the work queue and from the history", id)
		}
	}
	warnings := serverWarnings(r.logs.String())
	if len(warnings) == 0 && len(lostFromWork) > 0 {
		t.Errorf("%d alerts lost from the work queue and nothing in the log says so:\n%s", len(lostFromWork), r.logs)
	}
	t.Logf("truncated block: %d alerts queued, %d in the work queue after restart, %d of them handled and 100 new, %d lost from the work queue (all still in the history, for replay), duplicates %d",
		n, backlog, h.unique()-100, len(lostFromWork), h.duplicates())
	for _, w := range warnings {
		t.Logf("server said: %s", w)
	}
}

// TestStoreConsumerStateDeleted deletes the consumer's state after a clean
// shutdown with alerts still queued: the processor must recreate the
// consumer and handle every queued alert. Acked alerts are gone from a work
// queue, so only the queued ones come back.
func TestStoreConsumerStateDeleted(t *testing.T) {
	t.Parallel()
	n := streamtest.Scale(1000, 10_000)
	r := newDamageRig(t, filepath.Join(t.TempDir(), "data"))
	r.open()
	ids := r.publish("obs", n)

	// Handle about half, then stop with the rest queued.
	first := newHandledLog()
	router := processor.NewRouter()
	router.On("alerts.>", first.process)
	_, stop := runProcessor(t, r.conn.JS, router, reliabilityConfig(r.topo, first, r.log))
	streamtest.Eventually(t, 30*time.Second, func() bool { return first.unique() >= n/2 }, "first half handled")
	stop()
	queued := streamtest.StreamMsgs(r.conn.JS, r.topo.Work)
	r.close()
	if queued <= 0 {
		t.Fatalf("nothing queued at shutdown (%d): the test needs a backlog", queued)
	}

	obs := filepath.Join(streamDir(r.dir, r.topo.Work), "obs", "reactor")
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
	r.requireLog("consumer not found: creating it", fmt.Sprintf("work_backlog=%d", queued))
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
