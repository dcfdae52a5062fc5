package processor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestDeadLetterIntoFullStore: while the DLQ stream is full, an alert to be
// dead-lettered is nak'ed, never terminated: it stays in the group's
// backlog and comes back. Once room is made, the same running processor
// dead-letters it.
func TestDeadLetterIntoFullStore(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.router.On("alerts.bad", func(context.Context, *processor.Message) error {
		return processor.Permanent(errors.New("bad"))
	})
	b.router.On("alerts.ok", func(context.Context, *processor.Message) error { return nil })
	b.start()
	// Run ensures the streams before it binds the group's consumer: once
	// the consumer exists, the DLQ's limit set below stays.
	streamtest.Eventually(t, 10*time.Second, func() bool {
		_, _, ok := streamtest.ConsumerPending(b.conn.JS, b.topo.Alerts, processor.GroupDefault)
		return ok
	}, "the group's consumer created")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The processor made the streams; now the DLQ gets a size limit and
	// is filled to it.
	dlq, err := b.conn.JS.Stream(ctx, b.topo.DLQ)
	if err != nil {
		t.Fatal(err)
	}
	cfg := dlq.CachedInfo().Config
	cfg.MaxBytes, cfg.Discard = 4<<10, jetstream.DiscardNew
	if _, err := b.conn.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	streamtest.Fill(t, b.conn, b.topo.DLQSubject("alerts.junk"), 200, 100)
	junk := b.streamMsgs(b.topo.DLQ)

	b.publish(1, "alerts.bad")
	b.publish(3, "alerts.ok")
	streamtest.Eventually(t, 20*time.Second, func() error {
		refused := 0
		b.mu.Lock()
		for _, r := range b.outcomes {
			if r.Outcome == processor.OutcomeRetry && errors.Is(r.SettleErr, stream.ErrStoreFull) {
				refused++
			}
		}
		b.mu.Unlock()
		if refused < 3 || b.count(processor.OutcomeAck) != 3 {
			return fmt.Errorf("%d dead-letterings refused by the full DLQ, %d alerts acked; want 3 and 3", refused, b.count(processor.OutcomeAck))
		}
		return nil
	}, "the dead-lettering refused and retried, the other alerts handled")
	if n := b.count(processor.OutcomeDeadLetter); n != 0 {
		t.Fatalf("%d dead-lettered outcomes while the DLQ was full", n)
	}
	if backlog := b.backlog(processor.GroupDefault); backlog != 1 {
		t.Errorf("backlog %d while the DLQ is full, want the bad alert still unsettled", backlog)
	}

	// Room comes back: the bad alert is dead-lettered, nothing restarted.
	if err := dlq.Purge(ctx, jetstream.WithPurgeSubject(b.topo.DLQSubject("alerts.junk"))); err != nil {
		t.Fatal(err)
	}
	streamtest.Eventually(t, 20*time.Second, func() error {
		if n, backlog := b.count(processor.OutcomeDeadLetter), b.backlog(processor.GroupDefault); n != 1 || backlog != 0 {
			return fmt.Errorf("%d dead-lettered, backlog %d; want 1 and 0", n, backlog)
		}
		return nil
	}, "the bad alert dead-lettered once there is room")
	if got := streamtest.StoredMsgs(t, b.conn.JS, b.topo.DLQSubject("alerts.bad")); len(got) != 1 || junk == 0 {
		t.Errorf("%d dead letters of alerts.bad stored (after %d junk), want 1", len(got), junk)
	}
}
