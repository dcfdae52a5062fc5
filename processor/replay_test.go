package processor_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestReplayTimeWindowAndSubjects(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// A group, to show that replays leave it alone.
	if _, err := stream.EnsureConsumer(ctx, conn.JS, topo, stream.ConsumerSpec{Name: "g", AckWait: time.Minute, MaxDeliver: -1, MaxAckPending: 100}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		streamtest.Publish(t, conn, "alerts.a", fmt.Sprint("a-", i), []byte(fmt.Sprint("a", i)))
	}
	hist, err := conn.JS.Stream(ctx, topo.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	lastA, err := hist.GetMsg(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		streamtest.Publish(t, conn, fmt.Sprintf("alerts.b.%d", i%2), fmt.Sprint("b-", i), []byte(fmt.Sprint("b", i)))
	}
	// A redriven copy of b3 for group g: the replay of the whole stream
	// runs the original, not the copy.
	streamtest.Publish(t, conn, topo.RedriveSubject("g", "alerts.b.1"), "redrive-b3", []byte("b3 again"))

	var seen []string
	r := processor.NewRouter()
	r.On("alerts.>", func(_ context.Context, m *processor.Message) error {
		if m.Stream() != topo.Alerts || m.Delivered() != 1 || m.Timestamp().IsZero() || m.ID() == "" {
			t.Errorf("replayed message: stream %s delivered %d time %s id %q", m.Stream(), m.Delivered(), m.Timestamp(), m.ID())
		}
		seen = append(seen, string(m.Data()))
		switch string(m.Data()) {
		case "b1":
			return errors.New("handler failed")
		case "b2":
			panic("handler panicked")
		}
		return nil
	})

	replay := func(cfg processor.ReplayConfig) (processor.ReplayStats, []string) {
		t.Helper()
		seen = nil
		cfg.Topology = topo
		st, err := processor.Replay(ctx, conn.JS, r, cfg)
		if err != nil {
			t.Fatalf("replay %+v: %v", cfg, err)
		}
		return st, seen
	}

	st, got := replay(processor.ReplayConfig{Until: lastA.Time})
	if !slices.Equal(got, []string{"a0", "a1", "a2"}) || st.Replayed != 3 || st.OK != 3 || st.FirstSeq != 1 || st.LastSeq != 3 {
		t.Errorf("replay until the last of batch A: %v, %+v", got, st)
	}

	var pending uint64
	var results []processor.ReplayResult
	st, got = replay(processor.ReplayConfig{
		StartTime: lastA.Time.Add(time.Nanosecond),
		OnStart:   func(n uint64) { pending = n },
		OnResult:  func(res processor.ReplayResult) { results = append(results, res) },
	})
	if !slices.Equal(got, []string{"b0", "b1", "b2", "b3"}) || st.Replayed != 4 || st.OK != 2 || st.Failed != 2 || pending != 4 {
		t.Errorf("replay of batch B: %v, %+v, pending %d", got, st, pending)
	}
	var panicErr *processor.PanicError
	if len(results) != 4 || results[1].Err == nil || !errors.As(results[2].Err, &panicErr) || results[3].Err != nil {
		t.Errorf("results = %+v", results)
	}

	if _, got = replay(processor.ReplayConfig{FilterSubjects: []string{"alerts.b.1"}}); !slices.Equal(got, []string{"b1", "b3"}) {
		t.Errorf("replay of alerts.b.1: %v", got)
	}
	if _, got = replay(processor.ReplayConfig{StartSeq: 6}); !slices.Equal(got, []string{"b2", "b3"}) {
		t.Errorf("replay from seq 6: %v", got)
	}
	if _, err := processor.Replay(ctx, conn.JS, r, processor.ReplayConfig{FilterSubjects: []string{"alerts..x"}}); err == nil {
		t.Error("replay with an invalid subject filter: no error")
	}

	// Replay never touched the group: every alert is still pending for
	// it, and no consumer was left behind.
	if pending, ackPending, _ := streamtest.ConsumerPending(conn.JS, topo.Alerts, "g"); pending != 8 || ackPending != 0 {
		t.Errorf("group g: %d pending, %d ack pending after replays; want the 8 alerts pending", pending, ackPending)
	}
	streamtest.Eventually(t, 5*time.Second, func() bool {
		info, err := hist.Info(ctx)
		return err == nil && info.State.Consumers == 1
	}, "replay left consumers on the alert stream")
}

func TestReplayWhileProcessing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	handled := make(chan string, 10)
	b.router.On("alerts.>", func(_ context.Context, m *processor.Message) error {
		handled <- string(m.Data())
		return nil
	})
	stop := b.start()
	defer stop()
	streamtest.Publish(t, b.conn, "alerts.x", "x-1", []byte("live"))
	select {
	case <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("live alert not handled")
	}
	replayed := 0
	r := processor.NewRouter()
	r.On("alerts.>", func(context.Context, *processor.Message) error { replayed++; return nil })
	st, err := processor.Replay(context.Background(), b.conn.JS, r, processor.ReplayConfig{Topology: b.topo})
	if err != nil || st.Replayed != 1 || replayed != 1 {
		t.Fatalf("replay next to a live processor: %+v, %v", st, err)
	}
	select {
	case got := <-handled:
		t.Fatalf("the live processor handled %q again after a replay", got)
	default:
	}
}
