package processor_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// starterMux is a Mux and a Starter that records what the processor asks of
// it, in order.
type starterMux struct {
	*processor.Router
	startErr error

	mu     sync.Mutex
	events []string
	group  processor.Group
}

func (s *starterMux) record(e string) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

func (s *starterMux) Start(_ context.Context, g processor.Group) (func(), error) {
	s.record("start")
	s.mu.Lock()
	s.group = g
	s.mu.Unlock()
	if s.startErr != nil {
		return nil, s.startErr
	}
	return func() { s.record("stop") }, nil
}

func (s *starterMux) recorded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// TestStarterBracketsTheMessages: Run starts a Starter before the first
// message and stops it after the last, with the group it serves.
func TestStarterBracketsTheMessages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cfg.Group = "pager"
	h := &starterMux{Router: processor.NewRouter()}
	h.On("alerts.>", func(_ context.Context, m *processor.Message) error {
		h.record("handle " + m.ID())
		return nil
	})
	p, err := processor.New(b.conn.JS, h, b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.publish(2, "alerts.x")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	streamtest.Eventually(t, 10*time.Second, func() bool { return len(h.recorded()) == 3 }, "both alerts handled")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := h.recorded()
	if want := []string{"start", "handle alerts.x-0", "handle alerts.x-1", "stop"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if g := h.group; g.Name != "pager" || g.JetStream == nil || g.Topology.Alerts != b.topo.Alerts || g.Logger == nil {
		t.Errorf("group %+v: want pager on the processor's JetStream and topology", g)
	}
}

// TestStarterErrorStopsRun: a handler that cannot start keeps Run from
// taking any alert.
func TestStarterErrorStopsRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := &starterMux{Router: processor.NewRouter(), startErr: errors.New("no bucket")}
	h.On("alerts.>", func(context.Context, *processor.Message) error { return nil })
	p, err := processor.New(b.conn.JS, h, b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err == nil || !errors.Is(err, h.startErr) {
		t.Fatalf("Run = %v, want the start error", err)
	}
	if got := h.recorded(); !slices.Equal(got, []string{"start"}) {
		t.Errorf("events %q, want start only", got)
	}
}
