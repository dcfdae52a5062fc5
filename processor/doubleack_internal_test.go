package processor

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestConfirmerTakesOnlyItsOwnReply: the confirmation of an ack that timed
// out, arriving late, does not confirm the next ack. A subscriber on the
// ack subject plays the consumer: it leaves the first ack unanswered, then
// answers the second with the first's confirmation followed by a
// no-responders status for the second; the third it confirms.
func TestConfirmerTakesOnlyItsOwnReply(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	nc := conn.JS.Conn()
	acks := make(chan *nats.Msg, 3)
	sub, err := nc.ChanSubscribe("acks.test", acks)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	c, err := newConfirmer(nc, nc.NewInbox(), 0, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()

	if err := c.ack("acks.test"); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("unanswered ack: %v, want a timeout", err)
	}
	first := <-acks
	if string(first.Data) != "+ACK" {
		t.Fatalf("ack body %q, want +ACK", first.Data)
	}

	c.timeout = time.Minute // the answers below come before it
	done := make(chan error, 1)
	go func() { done <- c.ack("acks.test") }()
	second := <-acks
	if second.Reply == first.Reply {
		t.Fatalf("two acks share the reply subject %q", first.Reply)
	}
	if err := nc.Publish(first.Reply, nil); err != nil { // late, for the first
		t.Fatal(err)
	}
	status := &nats.Msg{Subject: second.Reply, Header: nats.Header{statusHeader: []string{noResponders}}}
	if err := nc.PublishMsg(status); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("second ack: %v, want its own answer (no responders), not the first's confirmation", err)
	}

	go func() { done <- c.ack("acks.test") }()
	third := <-acks
	if err := nc.Publish(third.Reply, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("confirmed ack: %v", err)
	}
}

// TestConfirmerNoConsumer: an ack whose consumer is gone (nothing
// subscribes to its subject) fails at once with the server's no-responders
// status instead of waiting out the timeout.
func TestConfirmerNoConsumer(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	nc := conn.JS.Conn()
	c, err := newConfirmer(nc, nc.NewInbox(), 3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.ack("$JS.ACK.GONE.gone.1.1.1.0.0"); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("ack without a consumer: %v, want no responders", err)
	}
}
