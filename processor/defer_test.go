package processor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// An alert deferred more often than MaxDeliver is neither dead-lettered nor
// skipped by the past-MaxDeliver check: deferrals are recorded in JetStream
// and do not count. A failure after the deferrals then counts from 1.
func TestDeferDoesNotCountTowardMaxDeliver(t *testing.T) {
	t.Parallel()
	b := setup(t) // MaxDeliver 3
	var (
		mu        sync.Mutex
		delivered []int
	)
	b.router.On("alerts.limited", func(_ context.Context, m *processor.Message) error {
		mu.Lock()
		defer mu.Unlock()
		delivered = append(delivered, m.Delivered())
		switch n := len(delivered); {
		case n <= 5:
			return processor.Defer(10*time.Millisecond, "limit full")
		case n == 6:
			return errors.New("downstream unavailable")
		}
		return nil
	})
	b.publish(1, "alerts.limited")
	b.start()
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeAck) == 1 }, "acked")
	mu.Lock()
	defer mu.Unlock()
	want := []int{1, 1, 1, 1, 1, 1, 2}
	if len(delivered) != len(want) {
		t.Fatalf("handler saw deliveries %v, want %v", delivered, want)
	}
	for i := range want {
		if delivered[i] != want[i] {
			t.Fatalf("handler saw deliveries %v, want %v", delivered, want)
		}
	}
	if got := b.count(processor.OutcomeDefer); got != 5 {
		t.Errorf("%d deferred outcomes, want 5", got)
	}
	if got := b.streamMsgs(b.topo.DLQ); got != 0 {
		t.Errorf("DLQ has %d messages, want 0", got)
	}
}
