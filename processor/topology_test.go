package processor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// group is one consumer group's processor in a test, with what it handled.
type group struct {
	handled *handledLog
	logs    *logBuffer
	p       *processor.Processor
	stop    func()
}

// runGroup runs a processor of the named group on js, handling every alert
// with h (or just recording it when h is nil).
func runGroup(t *testing.T, js jetstream.JetStream, topo stream.Topology, name string, filters []string, start stream.Start, h processor.HandlerFunc) *group {
	t.Helper()
	g := &group{handled: newHandledLog(), logs: &logBuffer{}}
	cfg := reliabilityConfig(topo, g.handled, slog.New(slog.NewTextHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	cfg.Group, cfg.FilterSubjects, cfg.Start = name, filters, start
	router := processor.NewRouter()
	router.On("alerts.>", func(ctx context.Context, m *processor.Message) error {
		if err := g.handled.process(ctx, m); err != nil || h == nil {
			return err
		}
		return h(ctx, m)
	})
	g.p, g.stop = runProcessor(t, js, router, cfg)
	return g
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = fmt.Sprint(prefix, "-", i)
	}
	return out
}

func publishIDs(t *testing.T, conn *stream.Conn, subject string, ids []string) {
	t.Helper()
	for _, id := range ids {
		streamtest.Publish(t, conn, subject, id, []byte(`{}`))
	}
}

// requireOnly fails unless h handled exactly want, each once.
func requireOnly(t *testing.T, name string, h *handledLog, want []string) {
	t.Helper()
	streamtest.Eventually(t, 20*time.Second, func() error { return h.handledAll(want) }, "group %s: alerts handled", name)
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, n := range h.seen {
		if !slices.Contains(want, id) {
			t.Errorf("group %s handled %s, which it should not", name, id)
		}
		if n > 1 {
			t.Errorf("group %s handled %s %d times", name, id, n)
		}
	}
}

// Groups whose filters overlap each handle every alert they match: fan-out,
// which a work-queue stream refuses.
func TestGroupsFanOut(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	all := runGroup(t, conn.JS, topo, "all", nil, stream.Start{}, nil)
	cpu := runGroup(t, conn.JS, topo, "cpu", []string{"alerts.cpu.>"}, stream.Start{}, nil)
	high := runGroup(t, conn.JS, topo, "high", []string{"alerts.cpu.high", "alerts.disk"}, stream.Start{}, nil)
	cpuHigh, cpuLow, disk := ids("cpu-high", 10), ids("cpu-low", 5), ids("disk", 5)
	publishIDs(t, conn, "alerts.cpu.high", cpuHigh)
	publishIDs(t, conn, "alerts.cpu.low", cpuLow)
	publishIDs(t, conn, "alerts.disk", disk)
	requireOnly(t, "all", all.handled, slices.Concat(cpuHigh, cpuLow, disk))
	requireOnly(t, "cpu", cpu.handled, slices.Concat(cpuHigh, cpuLow))
	requireOnly(t, "high", high.handled, slices.Concat(cpuHigh, disk))
}

// Where a new group starts: the first group of a stream gets the alerts
// published before any processor ran (auto is all); a group added later
// starts with the next alert (auto is new), unless told otherwise; status
// shows each choice.
func TestGroupStart(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	before := ids("before", 3)
	publishIDs(t, conn, "alerts.x", before) // as `send --url` before the first `run`
	first := runGroup(t, conn.JS, topo, "first", nil, stream.Start{}, nil)
	streamtest.Eventually(t, 10*time.Second, func() error { return first.handled.handledAll(before) }, "first group: alerts sent before it ran")
	late := runGroup(t, conn.JS, topo, "late", nil, stream.Start{}, nil)
	all := runGroup(t, conn.JS, topo, "everything", nil, stream.Start{Policy: stream.StartAll}, nil)
	after := ids("after", 2)
	publishIDs(t, conn, "alerts.x", after)
	requireOnly(t, "first", first.handled, slices.Concat(before, after))
	requireOnly(t, "late", late.handled, after)
	requireOnly(t, "everything", all.handled, slices.Concat(before, after))

	// A restart keeps the group's position, whatever --start says.
	late.stop()
	late2 := runGroup(t, conn.JS, topo, "late", nil, stream.Start{Policy: stream.StartAll}, nil)
	again := ids("again", 1)
	publishIDs(t, conn, "alerts.x", again)
	requireOnly(t, "late after a restart", late2.handled, again)

	st, err := stream.ReadStatus(context.Background(), conn.JS, topo)
	if err != nil {
		t.Fatal(err)
	}
	starts := map[string]string{}
	for _, g := range st.Groups {
		starts[g.Name] = g.Start
	}
	want := map[string]string{"first": "all (auto: first group)", "late": "new (auto: the stream has groups)", "everything": "all"}
	for name, s := range want {
		if starts[name] != s {
			t.Errorf("group %s: status start %q, want %q", name, starts[name], s)
		}
	}
}

// A redriven dead letter goes back to the group that dead-lettered it, and
// to no other group: one that takes every subject consumes the whole
// stream and acks it unhandled, one with filters never gets it.
func TestRedriveReturnsToItsGroupOnly(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	var failing atomic.Bool
	failing.Store(true)
	var redriven atomic.Value
	pager := runGroup(t, conn.JS, topo, "pager", nil, stream.Start{}, func(_ context.Context, m *processor.Message) error {
		if failing.Load() {
			return processor.Permanent(errors.New("pager down"))
		}
		redriven.Store(m.Subject() + " " + m.Header(stream.HeaderRedrivenFrom))
		return nil
	})
	audit := runGroup(t, conn.JS, topo, "audit", nil, stream.Start{}, nil)
	cpu := runGroup(t, conn.JS, topo, "cpu", []string{"alerts.cpu"}, stream.Start{}, nil)
	publishIDs(t, conn, "alerts.cpu", []string{"a-1"})
	q := stream.NewDLQ(conn.JS, topo)
	ctx := context.Background()
	var dead []stream.DLQEntry
	streamtest.Eventually(t, 10*time.Second, func() error {
		var err error
		if dead, _, err = q.List(ctx, "", 0); err != nil || len(dead) != 1 {
			return fmt.Errorf("%d dead letters (err %v), want 1", len(dead), err)
		}
		return nil
	}, "pager to dead-letter the alert")
	if dead[0].Group != "pager" {
		t.Fatalf("dead letter of group %q, want pager", dead[0].Group)
	}
	requireOnly(t, "audit", audit.handled, []string{"a-1"})

	failing.Store(false)
	red, err := q.Redrive(ctx, dead[0].DLQSequence)
	if err != nil {
		t.Fatalf("redrive: %v", err)
	}
	streamtest.Eventually(t, 10*time.Second, func() error {
		if redriven.Load() == nil {
			return errors.New("not handled yet")
		}
		return nil
	}, "pager to handle the redriven alert")
	if got, want := redriven.Load().(string), fmt.Sprint("alerts.cpu ", dead[0].DLQSequence); got != want {
		t.Errorf("pager saw subject and Reactor-Redriven-From %q, want %q", got, want)
	}
	waitDrained(t, conn.JS, topo, "pager", 10*time.Second)
	// audit's consumer delivered it and it was acked unhandled; cpu's
	// never delivered it.
	for group, deliveries := range map[string]uint64{"audit": 2, "cpu": 1} {
		waitDrained(t, conn.JS, topo, group, 10*time.Second)
		c, err := conn.JS.Consumer(ctx, topo.Alerts, group)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Delivered.Consumer != deliveries || info.NumPending != 0 || info.NumAckPending != 0 || info.NumRedelivered != 0 {
			t.Errorf("%s: %d deliveries, %d pending, %d ack pending, %d redelivered after the redrive (stream seq %d); want %d, 0, 0, 0",
				group, info.Delivered.Consumer, info.NumPending, info.NumAckPending, info.NumRedelivered, red.Sequence, deliveries)
		}
	}
	requireOnly(t, "audit", audit.handled, []string{"a-1"})
	requireOnly(t, "cpu", cpu.handled, []string{"a-1"})
	// pager: the original (dead-lettered), then the redrive, under its
	// own message id.
	requireOnly(t, "pager", pager.handled, []string{"a-1", red.MsgID})
}

// run warns while a group's oldest unsettled alert is older than half the
// stream's max age.
func TestBacklogAgeWarning(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	topo := stream.Topology{MaxAge: 4 * time.Second, DuplicateWindow: time.Second}.WithDefaults()
	release := make(chan struct{})
	g := runGroup(t, conn.JS, topo, "slow", nil, stream.Start{}, func(ctx context.Context, _ *processor.Message) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	publishIDs(t, conn, "alerts.x", []string{"stuck"})
	streamtest.Eventually(t, 10*time.Second, func() error {
		return g.logs.has("oldest unsettled alert is past half the retention")
	}, "a warning about the old unsettled alert")
	close(release)
	if !strings.Contains(g.logs.String(), "max_age=4s") {
		t.Errorf("the warning does not say the max age:\n%s", g.logs)
	}
}

// A consumer ahead of its stream (here: told to start past its end, as a
// replicated consumer restored from a live copy can be) would skip the next
// alerts; the processor recreates it after the stream's last alert.
func TestConsumerAheadOfStreamIsRewound(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	publishIDs(t, conn, "alerts.x", ids("old", 3))
	ctx := context.Background()
	if _, err := stream.EnsureConsumer(ctx, conn.JS, topo, stream.ConsumerSpec{Name: "ahead", AckWait: time.Minute, MaxDeliver: -1,
		MaxAckPending: 100, Start: stream.Start{Policy: stream.StartSeq, Seq: 100}}); err != nil {
		t.Fatal(err)
	}
	g := runGroup(t, conn.JS, topo, "ahead", nil, stream.Start{}, nil)
	fresh := ids("new", 3)
	publishIDs(t, conn, "alerts.x", fresh)
	requireOnly(t, "ahead", g.handled, fresh)
	if !strings.Contains(g.logs.String(), "consumer was ahead of the stream") {
		t.Errorf("no log line about the rewind:\n%s", g.logs)
	}
}
