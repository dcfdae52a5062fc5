package processor

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestDoubleAckResent: an ack that reaches no consumer leader gets no
// confirmation, and nothing says so; doubleAck sends it again until a leader
// that knows the delivery confirms it. The consumer is deleted after the
// delivery, and a plain subscriber on its ack subjects takes the first ack
// without answering, as a consumer leader that dies with the ack does. Then
// the consumer is created again and delivers the same alert: the resent ack
// must settle it, long before doubleAck's own timeout.
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
	swallowed := make(chan struct{}, 100)
	sub, err := conn.NC.Subscribe("$JS.ACK.ACKS.group.>", func(*nats.Msg) {
		select {
		case swallowed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := conn.NC.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- doubleAck(ctx, msg) }()
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
