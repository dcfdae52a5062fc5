package stream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestPublishBatchReportsRefusals: a message the server refuses for good
// (here a wrong expected last sequence) is reported with the server's
// error and not sent again, while the rest of the batch is stored once
// each, and done hears of every message once, by its index.
func TestPublishBatchReportsRefusals(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs := make([]*nats.Msg, 50)
	for i := range msgs {
		msgs[i] = nats.NewMsg("alerts.refusals")
		msgs[i].Header.Set(nats.MsgIdHdr, fmt.Sprintf("refusals-%d", i))
	}
	msgs[20].Header.Set(jetstream.ExpectedLastSeqHeader, "999")
	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{MaxPending: 8})
	seen := make([]int, len(msgs))
	failed := pub.PublishBatch(ctx, msgs, func(r stream.Result) {
		seen[r.Index]++
		var apiErr *jetstream.APIError
		switch {
		case r.Index == 20 && !errors.As(r.Err, &apiErr):
			t.Errorf("refused message: %v, want the server's APIError", r.Err)
		case r.Index != 20 && (r.Err != nil || r.Ack == nil || r.Ack.Duplicate):
			t.Errorf("message %d: ack %+v, err %v", r.Index, r.Ack, r.Err)
		}
	})
	if failed != 1 {
		t.Errorf("failed %d, want 1", failed)
	}
	for i, n := range seen {
		if n != 1 {
			t.Errorf("done called %d times for message %d", n, i)
		}
	}
	stored := streamtest.MsgIDs(t, conn.JS, topo.Alerts)
	if len(stored) != len(msgs)-1 || stored["refusals-20"] != 0 {
		t.Errorf("stored %d ids (refusals-20: %d), want %d without it", len(stored), stored["refusals-20"], len(msgs)-1)
	}
}

// TestPublisherSubscribesOnce: a Publisher receives the PubAcks of all its
// publishes, batches and single ones, on one subscription, made by the first.
func TestPublisherSubscribesOnce(t *testing.T) {
	t.Parallel()
	conn, _ := streamtest.NewTopology(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := conn.NC.NumSubscriptions()
	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{})
	for i := range 3 {
		msg := nats.NewMsg("alerts.once")
		msg.Header.Set(nats.MsgIdHdr, fmt.Sprintf("once-%d", i))
		if _, err := pub.Publish(ctx, msg); err != nil {
			t.Fatal(err)
		}
		batch := []*nats.Msg{nats.NewMsg("alerts.once")}
		batch[0].Header.Set(nats.MsgIdHdr, fmt.Sprintf("once-batch-%d", i))
		if failed := pub.PublishBatch(ctx, batch, nil); failed != 0 {
			t.Fatalf("batch %d failed", i)
		}
	}
	if got := conn.NC.NumSubscriptions() - before; got != 1 {
		t.Errorf("%d new subscriptions, want 1", got)
	}
}
