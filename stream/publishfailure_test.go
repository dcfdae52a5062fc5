package stream_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/embedded"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestPublishBatchAcrossServerRestart publishes a batch asynchronously while
// the server is shut down and restarted on the same store and port. The
// client is connected by URL, so it reconnects; futures pending at the
// reconnect fail with ErrDisconnected though their message may be stored,
// and PublishBatch retries them with the same Nats-Msg-Id, well inside the
// 2-minute duplicate window. Every message reported successful must be
// stored, and no id stored twice. Failures are allowed: they were reported.
func TestPublishBatchAcrossServerRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		down time.Duration // the outage between shutdown and restart
		cfg  stream.PublisherConfig
	}{
		// Retries outlast the restart: nothing should fail.
		{"quick restart", 0, stream.PublisherConfig{Attempts: 10, AttemptTimeout: 2 * time.Second}},
		// The outage outlasts the retries: some publishes fail, and must be
		// reported so.
		{"long outage", 2 * time.Second, stream.PublisherConfig{Attempts: 2, RetryWait: 50 * time.Millisecond, AttemptTimeout: 300 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			testPublishBatchRestart(t, tt.down, tt.cfg)
		})
	}
}

func testPublishBatchRestart(t *testing.T, down time.Duration, pcfg stream.PublisherConfig) {
	n := streamtest.Scale(10_000, 200_000)
	restarts := streamtest.Scale(1, 5)

	rs := startRestartable(t, embedded.Config{DataDir: t.TempDir(), Port: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := stream.Open(ctx, stream.Config{URL: rs.url})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	topo := stream.Topology{}.WithDefaults()
	if err := stream.EnsureStreams(ctx, conn.JS, topo); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}

	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		msgs[i] = nats.NewMsg("alerts.batch")
		msgs[i].Data = []byte(fmt.Sprintf(`{"n":%d}`, i))
		msgs[i].Header.Set(nats.MsgIdHdr, fmt.Sprintf("batch-%d", i))
	}
	results := make([]stream.Result, n)
	var (
		reported  int
		restarted sync.WaitGroup
		took      = make([]time.Duration, restarts)
	)
	next := 0 // restarts triggered
	pub := stream.NewPublisher(conn.JS, pcfg)
	start := time.Now()
	failed := pub.PublishBatch(ctx, msgs, func(r stream.Result) {
		results[r.Index] = r
		reported++
		// Restart the server at evenly spaced points of the batch, in the
		// background: PublishBatch keeps publishing meanwhile.
		if next < restarts && reported == (next+1)*n/(restarts+2) {
			restarted.Wait() // one restart at a time
			restarted.Add(1)
			go func(k int) {
				defer restarted.Done()
				took[k] = rs.restart(t, down)
			}(next)
			next++
		}
	})
	elapsed := time.Since(start)
	restarted.Wait()
	if reported != n {
		t.Fatalf("done called %d times for %d messages", reported, n)
	}
	if next != restarts {
		t.Fatalf("only %d of %d restarts happened during the batch", next, restarts)
	}

	stored := streamtest.MsgIDs(t, conn.JS, topo.Alerts)
	var ok, lost, twice, failedStored, deduped int
	for i, r := range results {
		id := msgs[i].Header.Get(nats.MsgIdHdr)
		switch {
		case r.Err == nil:
			ok++
			if r.Ack.Duplicate {
				deduped++ // a retry of a message the server had stored
			}
			if stored[id] == 0 {
				lost++
				if lost <= 10 {
					t.Errorf("%s reported stored (seq %d) but missing", id, r.Ack.Sequence)
				}
			}
		case stored[id] > 0:
			failedStored++ // reported failed, stored anyway: allowed
		}
	}
	for id, c := range stored {
		if c > 1 {
			twice++
			if twice <= 10 {
				t.Errorf("%s stored %d times", id, c)
			}
		}
	}
	if failed != n-ok {
		t.Errorf("PublishBatch returned %d failed, results say %d", failed, n-ok)
	}
	t.Logf("alerts %d in %s, restarts %d (down+up %v), reconnects %d: succeeded %d (%d of them retries the server recognised as duplicates), failed %d (of which stored anyway %d), lost %d, stored twice %d",
		n, elapsed.Round(time.Millisecond), restarts, took, conn.NC.Stats().Reconnects, ok, deduped, n-ok, failedStored, lost, twice)
	if conn.NC.Stats().Reconnects < uint64(restarts) {
		t.Errorf("client reconnected %d times for %d restarts: the restarts did not hit the batch", conn.NC.Stats().Reconnects, restarts)
	}
}

// restartable is an embedded server listening on a fixed port of 127.0.0.1
// that can be restarted on the same store.
type restartable struct {
	mu  sync.Mutex
	cfg embedded.Config
	srv *embedded.Server
	url string
}

func startRestartable(t *testing.T, cfg embedded.Config) *restartable {
	t.Helper()
	srv, err := embedded.Start(cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	cfg.Port = srv.NATS().Addr().(*net.TCPAddr).Port
	rs := &restartable{cfg: cfg, srv: srv, url: srv.ClientURL()}
	t.Cleanup(func() {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		if rs.srv != nil {
			rs.srv.Shutdown()
		}
	})
	return rs
}

// restart shuts the server down, keeps it down for the outage, starts it
// again on the same store and port, and returns how long it was down.
func (rs *restartable) restart(t *testing.T, outage time.Duration) time.Duration {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	start := time.Now()
	rs.srv.Shutdown()
	rs.srv = nil
	<-time.After(outage)
	var err error
	for range 50 {
		if rs.srv, err = embedded.Start(rs.cfg); err == nil {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond) // the port may take a moment to free
	}
	t.Errorf("restart server: %v", err)
	return time.Since(start)
}

// TestPublishResendsUnanswered publishes while the subject's only listener
// is a plain subscriber that never answers, as a stream replica that is no
// longer the leader gets a publish and drops it. The stream is created once
// the first send has been swallowed. The publish must be stored, once, long
// before its first send's AttemptTimeout: the unanswered send is sent again
// with the same id while it still waits.
func TestPublishResendsUnanswered(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	swallowed := streamtest.Swallow(t, conn, "resend.>")

	// Against the attempt timeout, 10s is long enough for any loaded
	// machine, and a minute's wait would fail the test.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{AttemptTimeout: time.Minute, ResendAfter: 50 * time.Millisecond})
	msg := nats.NewMsg("resend.one")
	msg.Header.Set(nats.MsgIdHdr, "resend-1")
	type result struct {
		ack *jetstream.PubAck
		err error
	}
	done := make(chan result, 1)
	go func() {
		ack, err := pub.Publish(ctx, msg)
		done <- result{ack, err}
	}()
	select {
	case <-swallowed:
	case r := <-done:
		t.Fatalf("publish returned before the stream existed: %+v", r)
	}
	if _, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "RESEND", Subjects: []string{"resend.>"}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("publish: %v", r.err)
	}
	if stored := streamtest.MsgIDs(t, conn.JS, "RESEND"); len(stored) != 1 || stored["resend-1"] != 1 {
		t.Errorf("stored %v, want resend-1 once", stored)
	}
}

// TestPublishBatchResendsUnanswered is TestPublishResendsUnanswered for a
// batch: an async publish whose PubAck never comes (a replica that is no
// longer leader took it) must not hold the batch until its context ends. It
// fails after RequestTimeoutDefault and is sent again with the same id.
func TestPublishBatchResendsUnanswered(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	swallowed := streamtest.Swallow(t, conn, "resendbatch.>")

	// Against an unbounded wait, 30s is long enough for any loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{ResendAfter: 50 * time.Millisecond})
	msg := nats.NewMsg("resendbatch.one")
	msg.Header.Set(nats.MsgIdHdr, "resendbatch-1")
	done := make(chan stream.Result, 1)
	go pub.PublishBatch(ctx, []*nats.Msg{msg}, func(r stream.Result) { done <- r })
	select {
	case <-swallowed:
	case r := <-done:
		t.Fatalf("publish returned before the stream existed: %+v", r)
	}
	if _, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "RESENDBATCH", Subjects: []string{"resendbatch.>"}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if r := <-done; r.Err != nil {
		t.Fatalf("publish: %v", r.Err)
	}
	if stored := streamtest.MsgIDs(t, conn.JS, "RESENDBATCH"); len(stored) != 1 || stored["resendbatch-1"] != 1 {
		t.Errorf("stored %v, want resendbatch-1 once", stored)
	}
}
