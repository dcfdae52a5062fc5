package processor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestDeferralsReadWithoutBucket: reading an alert's deferrals (on every
// redelivery) does not create the bucket: without it none was recorded.
// Creating a replicated bucket fails while a server of the cluster is down,
// and every alert redelivered in that outage was nak'ed unhandled, its
// delivery count climbing towards MaxDeliver. A three-replica topology on a
// single server fails the same way, every time.
func TestDeferralsReadWithoutBucket(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, replicas := range []int{3, 1} {
		p, err := New(conn.JS, HandlerFunc(func(context.Context, *Message) error { return nil }),
			Config{Topology: stream.Topology{Replicas: replicas}})
		if err != nil {
			t.Fatalf("new processor: %v", err)
		}
		m := &Message{stream: p.cfg.Topology.Alerts, sequence: 7, delivered: 2}
		if n, err := p.deferrals.count(ctx, p, m); n != 0 || err != nil {
			t.Fatalf("replicas %d: deferrals without a bucket: %d, %v; want 0, nil", replicas, n, err)
		}
		if _, err := conn.JS.KeyValue(ctx, DeferralsBucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Fatalf("replicas %d: after a read, bucket lookup: %v; want not found", replicas, err)
		}
		err = p.deferrals.record(ctx, p, m)
		if replicas > 1 {
			if err == nil {
				t.Fatal("a three-replica bucket was created on a single server")
			}
			continue
		}
		if err != nil {
			t.Fatalf("record a deferral: %v", err)
		}
		if n, err := p.deferrals.count(ctx, p, m); n != 1 || err != nil {
			t.Errorf("deferrals after one: %d, %v; want 1, nil", n, err)
		}
	}
}
