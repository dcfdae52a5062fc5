package pullwatch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/reactor-alerts/reactor/processor/internal/pullwatch"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pullWatchSetup returns a durable consumer on a stream holding n alerts,
// nobody pulling, allowing maxAckPending unacknowledged deliveries.
func pullWatchSetup(t *testing.T, n, maxAckPending int) jetstream.Consumer {
	t.Helper()
	conn := streamtest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "W", Subjects: []string{"alerts.>"}}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		streamtest.Publish(t, conn, "alerts.x", fmt.Sprint("a", i), []byte("x"))
	}
	cons, err := conn.JS.CreateOrUpdateConsumer(ctx, "W", jetstream.ConsumerConfig{
		Durable: "g", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxAckPending: maxAckPending,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cons
}

// runWatch runs w.Run for at most d and reports what it returned.
func runWatch(w *pullwatch.Watch, cons jetstream.Consumer, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return w.Run(ctx, cons)
}

func TestPullWatchFindsStalledConsumer(t *testing.T) {
	t.Parallel()
	cons := pullWatchSetup(t, 5, 100)
	var w pullwatch.Watch
	w.Wrap(func(jetstream.Msg, *jetstream.MsgMetadata) {})
	// Alerts pending, no pull waiting: what a lost pull request looks like.
	if !runWatch(&w, cons, 5*time.Second) {
		t.Fatal("Run did not report a consumer with 5 alerts pending and no pull waiting")
	}
}

func TestPullWatchLeavesPullingConsumerAlone(t *testing.T) {
	t.Parallel()
	// One delivery allowed unacknowledged, and the callback does not ack:
	// the server keeps the pull waiting with 4 alerts pending.
	cons := pullWatchSetup(t, 5, 1)
	var w pullwatch.Watch
	got := make(chan struct{}, 5)
	cc, err := cons.Consume(w.Wrap(func(jetstream.Msg, *jetstream.MsgMetadata) { got <- struct{}{} }), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	<-got
	// Idle and pulling: Run looks at 100, 200 and 400 ms and must not
	// report it.
	if runWatch(&w, cons, 900*time.Millisecond) {
		t.Fatal("Run reported a consumer with a pull waiting as stalled")
	}
}

func TestPullWatchLeavesBusyCallbackAlone(t *testing.T) {
	t.Parallel()
	cons := pullWatchSetup(t, 5, 100)
	// A message fetched on its own: the pull is done, 4 alerts pending.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := cons.Next(jetstream.FetchContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	var w pullwatch.Watch
	entered, release, returned := make(chan struct{}), make(chan struct{}), make(chan struct{})
	fn := w.Wrap(func(jetstream.Msg, *jetstream.MsgMetadata) {
		close(entered)
		<-release
	})
	go func() {
		defer close(returned)
		fn(msg) // a callback blocked handing a message to busy workers
	}()
	<-entered
	// The server has alerts and no pull, but the client holds messages it
	// has not handed on yet: not a stall.
	if runWatch(&w, cons, 900*time.Millisecond) {
		t.Fatal("Run reported a stall while the callback was busy")
	}
	close(release)
	<-returned
	if !runWatch(&w, cons, 5*time.Second) {
		t.Fatal("Run did not report the stall once the callback returned")
	}
}

func TestPullWatchLeavesDeliveryInTransitAlone(t *testing.T) {
	t.Parallel()
	cons := pullWatchSetup(t, 5, 100)
	var w pullwatch.Watch
	w.Wrap(func(jetstream.Msg, *jetstream.MsgMetadata) {})
	// The server delivered a message the callback has not seen: a client
	// too busy to read its socket looks like this. Stopping its Consume
	// would drop the message until AckWait.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cons.Next(jetstream.FetchContext(ctx)); err != nil {
		t.Fatal(err)
	}
	if runWatch(&w, cons, 900*time.Millisecond) {
		t.Fatal("Run reported a stall with a delivery in transit")
	}
}
