package processor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestConfirmerTakesOnlyItsOwnReply: the confirmation of an ack that timed
// out, arriving late, does not confirm the next ack, and a resend goes with
// the ack's own reply subject. A subscriber on the ack subject plays the
// consumer: it leaves the first ack unanswered; it answers the second with
// the first's confirmation followed by a no-responders status for the
// second, which then times out refused; the third it confirms only when it
// is sent again.
func TestConfirmerTakesOnlyItsOwnReply(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	nc := conn.JS.Conn()
	acks := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe("acks.test", acks)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	c, err := newConfirmer(nc, nc.NewInbox(), 0, 200*time.Millisecond, time.Hour)
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

	c.timeout = time.Second // the answers below come long before it
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

	c.timeout, c.resend = time.Minute, 50*time.Millisecond
	go func() { done <- c.ack("acks.test") }()
	third := <-acks // left unanswered
	var again *nats.Msg
	select {
	case again = <-acks:
	case <-time.After(10 * time.Second):
		t.Fatal("the unanswered ack was not sent again")
	}
	if again.Reply != third.Reply || string(again.Data) != "+ACK" {
		t.Fatalf("resent ack: reply %q body %q, want %q and +ACK", again.Reply, again.Data, third.Reply)
	}
	if err := nc.Publish(again.Reply, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("confirmed ack: %v", err)
	}
}

// TestConfirmerNoConsumer: an ack whose consumer is gone (nothing
// subscribes to its subject) is refused with the server's no-responders
// status at every send, and fails with it once the timeout is up.
func TestConfirmerNoConsumer(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	nc := conn.JS.Conn()
	c, err := newConfirmer(nc, nc.NewInbox(), 3, 500*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.ack("$JS.ACK.GONE.gone.1.1.1.0.0"); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("ack without a consumer: %v, want no responders", err)
	}
}

// TestDoubleAckResent: an ack that reaches no consumer leader gets no
// confirmation, and nothing says so; the confirmer sends it again until a leader
// that knows the delivery confirms it. The consumer is deleted after the
// delivery, and a plain subscriber on its ack subjects takes the first ack
// without answering, as a consumer leader that dies with the ack does. Then
// the consumer is created again and delivers the same alert: the resent ack
// must settle it, long before the confirmer's own timeout.
func TestDoubleAckResent(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "ACKS", Subjects: []string{"acks.>"}})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	streamtest.Publish(t, conn, "acks.one", "ack-1", []byte("{}"))
	ccfg := jetstream.ConsumerConfig{Durable: "group", AckPolicy: jetstream.AckExplicitPolicy}
	fetchOne := func() jetstream.Msg {
		t.Helper()
		cons, err := s.CreateOrUpdateConsumer(ctx, ccfg)
		if err != nil {
			t.Fatalf("create consumer: %v", err)
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		for msg := range batch.Messages() {
			return msg
		}
		t.Fatalf("fetch: no message (%v)", batch.Error())
		return nil
	}
	msg := fetchOne()
	if err := s.DeleteConsumer(ctx, "group"); err != nil {
		t.Fatalf("delete consumer: %v", err)
	}
	swallowed := streamtest.Swallow(t, conn, "$JS.ACK.ACKS.group.>")

	c, err := newConfirmer(conn.NC, conn.NC.NewInbox(), 0, stream.RequestTimeoutDefault, stream.ResendAfterDefault)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	done := make(chan error, 1)
	go func() { done <- c.ack(msg.Reply()) }()
	select {
	case <-swallowed:
	case err := <-done:
		t.Fatalf("ack returned before a consumer existed: %v", err)
	}
	again := fetchOne() // the same alert, delivered by the new consumer
	if again.Headers().Get(nats.MsgIdHdr) != "ack-1" {
		t.Fatalf("fetched %v, want ack-1", again.Headers())
	}
	if err := <-done; err != nil {
		t.Fatalf("double ack: %v", err)
	}
	cons, err := s.Consumer(ctx, "group")
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	if info.NumAckPending != 0 || info.AckFloor.Stream != 1 {
		t.Errorf("ack pending %d, ack floor %d: want the alert settled", info.NumAckPending, info.AckFloor.Stream)
	}
}
