package processor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestOldAckWaitUpdatedInPlace: a group whose consumer an older reactor
// created with a 30s ack wait, and whose dead process still holds alerts
// it fetched, gets the current ack wait when a processor with the default
// config binds it, keeping its position: the held alerts come back within
// the new ack wait, and every alert is handled.
func TestOldAckWaitUpdatedInPlace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cfg.AckWait = 0 // the default
	b.cfg.Heartbeat = 0
	ctx := context.Background()
	old := stream.ConsumerSpec{Name: processor.GroupDefault, AckWait: 30 * time.Second, MaxDeliver: -1, MaxAckPending: 1000}
	cons, err := stream.EnsureConsumer(ctx, b.conn.JS, b.topo, old)
	if err != nil {
		t.Fatal(err)
	}
	const n, held = 20, 5
	b.publish(n, "alerts.old")
	// A process of the group fetched some alerts and died with them.
	batch, err := cons.Fetch(held, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for range batch.Messages() {
		got++
	}
	if got != held {
		t.Fatalf("fetched %d alerts, want %d (err %v)", got, held, batch.Error())
	}
	handled := newHandledLog()
	b.router.On("alerts.>", handled.process)
	b.start()
	streamtest.Eventually(t, 3*processor.AckWaitDefault, func() error {
		if u := handled.unique(); u < n {
			return fmt.Errorf("%d of %d alerts handled", u, n)
		}
		return nil
	}, "every alert handled, the dead process's %d too", held)
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.AckWait != processor.AckWaitDefault {
		t.Errorf("consumer ack wait %s, want the default %s", info.Config.AckWait, processor.AckWaitDefault)
	}
	if info.Config.DeliverPolicy != jetstream.DeliverAllPolicy || info.Delivered.Stream != n {
		t.Errorf("consumer deliver policy %s, delivered up to seq %d: want its first position kept (all) and %d", info.Config.DeliverPolicy, info.Delivered.Stream, n)
	}
}
