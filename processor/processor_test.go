package processor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/goleak"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/embedded"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bundle is what most tests need: a server with the topology, a router and a
// way to run a processor on them.
type bundle struct {
	t      *testing.T
	conn   *stream.Conn
	topo   stream.Topology
	router *processor.Router
	cfg    processor.Config

	mu       sync.Mutex
	outcomes []processor.Result
}

func setup(t *testing.T) *bundle {
	t.Helper()
	conn, topo := streamtest.NewTopology(t)
	b := &bundle{t: t, conn: conn, topo: topo, router: processor.NewRouter()}
	b.cfg = processor.Config{
		Topology:        topo,
		Workers:         4,
		AckWait:         2 * time.Second,
		MaxDeliver:      3,
		BackoffBase:     10 * time.Millisecond,
		BackoffMax:      50 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
		OnOutcome: func(r processor.Result) {
			b.mu.Lock()
			b.outcomes = append(b.outcomes, r)
			b.mu.Unlock()
		},
	}
	return b
}

// start runs a processor until the returned stop function is called (or the
// test ends), and returns stop.
func (b *bundle) start() (stop func()) {
	b.t.Helper()
	p, err := processor.New(b.conn.JS, b.router, b.cfg)
	if err != nil {
		b.t.Fatalf("new processor: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				b.t.Errorf("run: %v", err)
			}
		})
	}
	b.t.Cleanup(stop)
	return stop
}

func (b *bundle) publish(n int, subject string) {
	b.t.Helper()
	for i := range n {
		streamtest.Publish(b.t, b.conn, subject, fmt.Sprintf("%s-%d", subject, i), []byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
}

func (b *bundle) count(o processor.Outcome) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, r := range b.outcomes {
		if r.Outcome == o {
			n++
		}
	}
	return n
}

// backlog is the group's alerts not yet settled: pending plus ack pending.
func (b *bundle) backlog(group string) uint64 {
	b.t.Helper()
	pending, ackPending, ok := streamtest.ConsumerPending(b.conn.JS, b.topo.Alerts, group)
	if !ok {
		return 1 << 63
	}
	return pending + uint64(ackPending)
}

func (b *bundle) streamMsgs(name string) uint64 {
	b.t.Helper()
	s, err := b.conn.JS.Stream(context.Background(), name)
	if err != nil {
		b.t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		b.t.Fatalf("stream info %s: %v", name, err)
	}
	return info.State.Msgs
}

func (b *bundle) deadLetters() []stream.DeadLetter {
	b.t.Helper()
	ctx := context.Background()
	s, err := b.conn.JS.Stream(ctx, b.topo.DLQ)
	if err != nil {
		b.t.Fatalf("dlq: %v", err)
	}
	info, _ := s.Info(ctx)
	var out []stream.DeadLetter
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			b.t.Fatalf("get dlq %d: %v", seq, err)
		}
		out = append(out, stream.ParseDeadLetter(raw.Subject, raw.Data, raw.Header))
	}
	return out
}

// fillDLQ makes the DLQ refuse new messages: one message at most, and it
// holds one. Run leaves a stream's limits alone. The returned function lifts
// the limit again.
func (b *bundle) fillDLQ() (restore func()) {
	b.t.Helper()
	ctx := context.Background()
	s, err := b.conn.JS.Stream(ctx, b.topo.DLQ)
	if err != nil {
		b.t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	full := cfg
	full.MaxMsgs, full.Discard = 1, jetstream.DiscardNew
	if _, err := b.conn.JS.UpdateStream(ctx, full); err != nil {
		b.t.Fatal(err)
	}
	streamtest.Publish(b.t, b.conn, "dlq.filler", "filler", []byte("x"))
	return func() {
		b.t.Helper()
		if _, err := b.conn.JS.UpdateStream(ctx, cfg); err != nil {
			b.t.Fatal(err)
		}
	}
}

func TestHappyPathEachAlertHandledOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	seen := map[string]int{}
	b.router.On("alerts.>", func(_ context.Context, m *processor.Message) error {
		mu.Lock()
		seen[m.ID()]++
		mu.Unlock()
		return nil
	})
	const n = 200
	b.publish(n, "alerts.cpu")
	b.start()
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeAck) == n }, "%d alerts acked", n)
	streamtest.Eventually(t, 5*time.Second, func() bool { return b.backlog("reactor") == 0 }, "backlog drained")
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Fatalf("handled %d distinct alerts, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("alert %s handled %d times, want 1", id, c)
		}
	}
	if got := b.streamMsgs(b.topo.Alerts); got != n {
		t.Errorf("history has %d alerts, want %d (acks must not delete history)", got, n)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var calls atomic.Int32
	var lastDelivered atomic.Int32
	b.router.On("alerts.flaky", func(_ context.Context, m *processor.Message) error {
		lastDelivered.Store(int32(m.Delivered()))
		if calls.Add(1) <= 2 {
			return errors.New("downstream unavailable")
		}
		return nil
	})
	b.publish(1, "alerts.flaky")
	b.start()
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeAck) == 1 }, "acked")
	if got := calls.Load(); got != 3 {
		t.Errorf("handler called %d times, want 3", got)
	}
	if got := lastDelivered.Load(); got != 3 {
		t.Errorf("last delivery count %d, want 3", got)
	}
	if got := b.count(processor.OutcomeRetry); got != 2 {
		t.Errorf("%d retries, want 2", got)
	}
	if got := b.streamMsgs(b.topo.DLQ); got != 0 {
		t.Errorf("DLQ has %d messages, want 0", got)
	}
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.router.On("alerts.bad", func(context.Context, *processor.Message) error {
		return processor.Permanent(errors.New("malformed alert"))
	})
	b.router.On("alerts.broken", func(context.Context, *processor.Message) error {
		return errors.New("always fails")
	})
	b.router.On("alerts.drop", func(context.Context, *processor.Message) error {
		return processor.ErrDrop
	})
	b.publish(1, "alerts.bad")
	b.publish(1, "alerts.broken")
	b.publish(1, "alerts.drop")
	b.publish(1, "alerts.unrouted.x")
	b.start()
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeDeadLetter) == 3 }, "3 dead letters")
	streamtest.Eventually(t, 5*time.Second, func() bool { return b.backlog("reactor") == 0 }, "backlog drained")
	if got := b.count(processor.OutcomeDrop); got != 1 {
		t.Errorf("%d dropped, want 1", got)
	}
	dls := b.deadLetters()
	if len(dls) != 3 {
		t.Fatalf("DLQ has %d dead letters, want 3", len(dls))
	}
	bySubject := map[string]stream.DeadLetter{}
	for _, d := range dls {
		bySubject[d.Subject] = d
	}
	tests := []struct {
		subject, reason, errText, pattern string
		deliveries                        int
	}{
		{"alerts.bad", stream.ReasonPermanent, "malformed alert", "alerts.bad", 1},
		{"alerts.broken", stream.ReasonMaxDeliveries, "always fails", "alerts.broken", 3},
		{"alerts.unrouted.x", stream.ReasonNoHandler, "no handler", "", 1},
	}
	for _, tt := range tests {
		d, ok := bySubject[tt.subject]
		if !ok {
			t.Errorf("no dead letter for %s", tt.subject)
			continue
		}
		if d.Reason != tt.reason || !strings.Contains(d.Error, tt.errText) || d.Entry != tt.pattern || d.Deliveries != tt.deliveries {
			t.Errorf("%s: reason=%q error=%q pattern=%q deliveries=%d, want %q, ~%q, %q, %d",
				tt.subject, d.Reason, d.Error, d.Entry, d.Deliveries, tt.reason, tt.errText, tt.pattern, tt.deliveries)
		}
		if d.Stream != b.topo.Alerts || d.Sequence == 0 || d.Group != "reactor" || d.MsgID == "" {
			t.Errorf("%s: stream=%q seq=%d group=%q msgid=%q", tt.subject, d.Stream, d.Sequence, d.Group, d.MsgID)
		}
		if d.FirstAttempt.IsZero() || d.LastAttempt.IsZero() || d.LastAttempt.Before(d.FirstAttempt) || d.Queued.IsZero() {
			t.Errorf("%s: first=%v last=%v queued=%v", tt.subject, d.FirstAttempt, d.LastAttempt, d.Queued)
		}
		if string(d.Data) != `{"n":0}` {
			t.Errorf("%s: payload %q not kept", tt.subject, d.Data)
		}
	}
	if d := bySubject["alerts.broken"]; !d.LastAttempt.After(d.FirstAttempt) {
		t.Errorf("retried dead letter: last attempt %v not after first %v", d.LastAttempt, d.FirstAttempt)
	}
}

func TestPanicIsRetriedThenDeadLetteredWithStack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.router.On("alerts.panic", func(context.Context, *processor.Message) error {
		panic("handler bug")
	})
	b.router.On("alerts.ok", func(context.Context, *processor.Message) error { return nil })
	logs := &logBuffer{}
	b.cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	b.publish(1, "alerts.panic")
	b.publish(5, "alerts.ok")
	b.start()
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeDeadLetter) == 1 }, "dead letter")
	var line struct{ Outcome, Err, Stack string }
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, `"outcome":"dead_lettered"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("log line %s: %v", l, err)
			}
		}
	}
	if line.Err != "panic: handler bug" || !strings.Contains(line.Stack, "goroutine") {
		t.Errorf("dead-letter log line err=%q stack=%.40q: want the panic in err and its stack apart", line.Err, line.Stack)
	}
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeAck) == 5 }, "the process survived and handled the rest")
	d := b.deadLetters()[0]
	if d.Deliveries != 3 || !strings.Contains(d.Error, "panic: handler bug") || !strings.Contains(d.Error, "goroutine") {
		t.Errorf("dead letter deliveries=%d error=%q: want 3 deliveries and the panic with its stack", d.Deliveries, d.Error)
	}
}

func TestDLQPublishFailureKeepsAlert(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cfg.MaxDeliver = 1000 // the fix below must come before the last delivery
	var fail atomic.Bool
	fail.Store(true)
	b.router.On("alerts.x", func(context.Context, *processor.Message) error {
		if fail.Load() {
			return processor.Permanent(errors.New("bad"))
		}
		return nil
	})
	b.fillDLQ()
	b.publish(1, "alerts.x")
	b.start()
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeRetry) >= 2 }, "dead-letter failures turn into retries")
	if got := b.backlog("reactor"); got != 1 {
		t.Fatalf("backlog is %d alerts, want the 1 that could not be dead-lettered", got)
	}
	if got := b.count(processor.OutcomeDeadLetter); got != 0 {
		t.Fatalf("%d dead-lettered into a full DLQ", got)
	}
	fail.Store(false)
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeAck) == 1 }, "handled later")
	if got := b.backlog("reactor"); got != 0 {
		t.Errorf("backlog is %d alerts after success, want 0", got)
	}
}

// TestLongHandlerHeartbeat: a handler that runs three ack waits keeps its
// alert while the heartbeat marks it; without the heartbeat the server
// delivers the alert again, and the process, whose handler still runs it,
// drops the copy: the handler runs once either way.
func TestLongHandlerHeartbeat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		heartbeat     time.Duration
		wantRedeliver bool
	}{
		{"heartbeat keeps it", 0, false},
		{"no heartbeat redelivers", -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.cfg.AckWait = 500 * time.Millisecond
			b.cfg.Heartbeat = tt.heartbeat
			b.cfg.MaxDeliver = 10
			var calls, running, overlaps atomic.Int32
			b.router.On("alerts.slow", func(ctx context.Context, m *processor.Message) error {
				calls.Add(1)
				if running.Add(1) > 1 {
					overlaps.Add(1)
				}
				defer running.Add(-1)
				select {
				case <-time.After(3 * b.cfg.AckWait):
				case <-ctx.Done():
				}
				return nil
			})
			b.publish(1, "alerts.slow")
			b.start()
			streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeAck) >= 1 }, "acked")
			// The redeliveries that come while the handler runs are
			// dropped: the alert never runs twice at once. Without marks,
			// one the server sends just before the ack reaches it comes
			// after the handler returned, and runs it again (at least
			// once); with marks there is none.
			if got := overlaps.Load(); got != 0 {
				t.Errorf("handler ran %d times while it was running already", got)
			}
			if got := calls.Load(); got != 1 && !tt.wantRedeliver {
				t.Errorf("handler called %d times, want 1", got)
			}
			c, err := b.conn.JS.Consumer(context.Background(), b.topo.Alerts, processor.GroupDefault)
			if err != nil {
				t.Fatal(err)
			}
			// The consumer sequence counts deliveries, redeliveries included.
			redelivered := c.CachedInfo().Delivered.Consumer > 1
			if redelivered != tt.wantRedeliver {
				t.Errorf("deliveries %d: redelivered=%v, want %v", c.CachedInfo().Delivered.Consumer, redelivered, tt.wantRedeliver)
			}
		})
	}
}

func TestShutdownNaksUnfinished(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cfg.Workers = 16
	b.cfg.ShutdownTimeout = 200 * time.Millisecond
	b.cfg.AckWait = 30 * time.Second // a nak, not an ack timeout, must bring them back
	release := make(chan struct{})
	var started atomic.Int32
	var handled sync.Map
	b.router.On("alerts.slow", func(ctx context.Context, m *processor.Message) error {
		select {
		case <-release:
			handled.Store(m.ID(), true)
			return nil
		default:
		}
		started.Add(1)
		<-ctx.Done() // never finishes before the shutdown cancels it
		return ctx.Err()
	})
	const n = 40
	b.publish(n, "alerts.slow")
	stop := b.start()
	streamtest.Eventually(t, 10*time.Second, func() bool { return started.Load() == 16 }, "16 in flight")
	stop()
	close(release)
	b.outcomes = nil
	b.start()
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeAck) == n }, "every alert handled after restart")
	for i := range n {
		if _, ok := handled.Load(fmt.Sprintf("alerts.slow-%d", i)); !ok {
			t.Errorf("alert %d lost", i)
		}
	}
}

func TestRestartOnSameDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open := func() *stream.Conn {
		conn, err := embedded.Open(context.Background(), embedded.Config{DataDir: dir, DontListen: true}, stream.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	run := func(conn *stream.Conn, until func() bool) {
		r := processor.NewRouter()
		r.On("alerts.>", func(_ context.Context, m *processor.Message) error {
			mu.Lock()
			seen[m.ID()] = true
			mu.Unlock()
			time.Sleep(time.Millisecond)
			return nil
		})
		// Deliveries the stopped server had not recorded as settled come
		// back after AckWait: keep it short.
		p, err := processor.New(conn.JS, r, processor.Config{Workers: 4, ShutdownTimeout: time.Second, AckWait: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()
		streamtest.Eventually(t, 30*time.Second, until, "progress")
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	const n = 2000
	conn := open()
	if err := stream.EnsureStreams(context.Background(), conn.JS, stream.Topology{}); err != nil {
		t.Fatal(err)
	}
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		msgs[i] = nats.NewMsg(fmt.Sprintf("alerts.load.%d", i%7))
		msgs[i].Header.Set(nats.MsgIdHdr, fmt.Sprintf("id-%d", i))
		msgs[i].Data = []byte("x")
	}
	if failed := stream.NewPublisher(conn.JS, stream.PublisherConfig{}).PublishBatch(context.Background(), msgs, nil); failed != 0 {
		t.Fatalf("%d publishes failed", failed)
	}
	run(conn, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= n/4 })
	_ = conn.Close() // stops the embedded server mid-backlog
	mu.Lock()
	first := len(seen)
	mu.Unlock()
	if first >= n {
		t.Fatalf("backlog done before the restart (%d): the test proves nothing", first)
	}
	conn = open()
	defer conn.Close()
	run(conn, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == n })
}

func TestConsumerDeletedIsRecreated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var handled, second atomic.Int32
	b.router.On("alerts.>", func(_ context.Context, m *processor.Message) error {
		handled.Add(1)
		if m.Subject() == "alerts.b" {
			second.Add(1)
		}
		return nil
	})
	b.publish(5, "alerts.a")
	b.start()
	streamtest.Eventually(t, 10*time.Second, func() bool { return handled.Load() == 5 }, "first batch")
	if err := b.conn.JS.DeleteConsumer(context.Background(), b.topo.Alerts, "reactor"); err != nil {
		t.Fatal(err)
	}
	b.publish(5, "alerts.b")
	// The recreated consumer is the stream's only group: it starts with
	// every alert kept (auto), so the first batch comes back too.
	streamtest.Eventually(t, 20*time.Second, func() bool { return second.Load() == 5 }, "processing resumed after the consumer was deleted (handled %d)", handled.Load())
}

// TestTraceparentReachesHandlerAndDeadLetter: the handler's context carries
// the publisher's trace, with the default tracer provider and with a noop
// one (no span started), and the dead letter keeps the header.
func TestTraceparentReachesHandlerAndDeadLetter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		provider trace.TracerProvider
	}{{"global", nil}, {"noop", noop.NewTracerProvider()}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.cfg.TracerProvider = tc.provider
			traces := make(chan string, 1)
			b.router.On("alerts.traced", func(ctx context.Context, m *processor.Message) error {
				sc := trace.SpanContextFromContext(ctx)
				traces <- sc.TraceID().String()
				return processor.Permanent(errors.New("for the DLQ"))
			})
			msg := nats.NewMsg("alerts.traced")
			msg.Header.Set(nats.MsgIdHdr, "traced-1")
			const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			msg.Header.Set("traceparent", parent) // lower case, as other publishers write it
			if _, err := stream.NewPublisher(b.conn.JS, stream.PublisherConfig{}).Publish(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
			b.start()
			if got := <-traces; got != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Errorf("handler saw trace id %q, want the publisher's", got)
			}
			streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeDeadLetter) == 1 }, "dead letter")
			if got := stream.Traceparent(b.deadLetters()[0].Header); got != parent {
				t.Errorf("dead letter traceparent %q, want %q", got, parent)
			}
		})
	}
}

// TestConsumerSpansKeepThePublishersTrace: with a parent-based sampler, the
// consumer span of an alert published outside any trace (the publisher makes
// one) is recorded in that trace, as is one whose publisher sampled it; one
// whose publisher chose not to sample is not.
func TestConsumerSpansKeepThePublishersTrace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	spans := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())), sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	b.cfg.TracerProvider = provider
	b.router.On("alerts.>", func(context.Context, *processor.Message) error { return nil })

	publisher := stream.NewPublisher(b.conn.JS, stream.PublisherConfig{})
	for _, tc := range []struct{ subject, traceparent string }{
		{"alerts.untraced", ""},
		{"alerts.sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"alerts.unsampled", "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
	} {
		msg := nats.NewMsg(tc.subject)
		msg.Header.Set(nats.MsgIdHdr, tc.subject)
		if tc.traceparent != "" {
			msg.Header.Set("traceparent", tc.traceparent)
		}
		if _, err := publisher.Publish(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	b.start()
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeAck) == 3 }, "3 alerts handled")

	s, err := b.conn.JS.Stream(context.Background(), b.topo.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]trace.SpanContext{}
	for seq := uint64(1); seq <= 2; seq++ {
		raw, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		want[raw.Subject] = trace.SpanContextFromContext(stream.ExtractTrace(context.Background(), raw.Header))
	}
	got := map[string]trace.SpanContext{}
	for _, span := range spans.Ended() {
		for _, a := range span.Attributes() {
			if a.Key == "messaging.destination.name" {
				got[a.Value.AsString()] = span.Parent()
			}
		}
	}
	if len(got) != 2 {
		t.Fatalf("recorded consumer spans of %v, want alerts.untraced and alerts.sampled", got)
	}
	for subject, parent := range want {
		if got[subject].TraceID() != parent.TraceID() || got[subject].SpanID() != parent.SpanID() {
			t.Errorf("%s: consumer span's parent %s/%s, want the stored traceparent's %s/%s",
				subject, got[subject].TraceID(), got[subject].SpanID(), parent.TraceID(), parent.SpanID())
		}
	}
}

func TestReadyOnceBound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p, err := processor.New(b.conn.JS, b.router, b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.Ready() {
		t.Fatal("ready before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	streamtest.Eventually(t, 10*time.Second, p.Ready, "ready after binding the consumer")
	cancel()
	<-done
	if p.Ready() {
		t.Error("still ready after Run returned")
	}
}

func TestDLQFailureOnLastDeliveryDoesNotStrandAlert(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.router.On("alerts.x", func(context.Context, *processor.Message) error {
		return errors.New("always fails")
	})
	restore := b.fillDLQ()
	b.publish(1, "alerts.x")
	b.start()
	// Past MaxDeliver (3), dead-lettering keeps failing and the alert keeps
	// coming back: the server does not give up on it.
	streamtest.Eventually(t, 10*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, r := range b.outcomes {
			if r.Message.Delivered() > 3 && r.SettleErr != nil {
				return true
			}
		}
		return false
	}, "delivery past max deliver after a failed dead-letter")
	restore()
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeDeadLetter) == 1 }, "dead-lettered once the DLQ has room")
	streamtest.Eventually(t, 5*time.Second, func() bool { return b.backlog("reactor") == 0 }, "backlog drained")
}

func TestPoisonAlertIsDeadLetteredWithoutRunningAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cfg.MaxDeliver = 1
	b.cfg.Heartbeat = -1
	b.cfg.AckWait = 300 * time.Millisecond
	var calls atomic.Int32
	release := make(chan struct{})
	b.router.On("alerts.poison", func(ctx context.Context, _ *processor.Message) error {
		calls.Add(1)
		<-release // outlives its ack wait, as a handler that crashes the process would
		return nil
	})
	b.publish(1, "alerts.poison")
	b.start()
	// The handler that never returns stands for one that crashed its
	// process: a second process gets the redelivery (the first drops it,
	// as its handler still runs the alert).
	streamtest.Eventually(t, 10*time.Second, func() bool { return calls.Load() == 1 }, "handler running")
	b.start()
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeDeadLetter) == 1 }, "dead-lettered on redelivery")
	close(release)
	if got := calls.Load(); got != 1 {
		t.Errorf("handler ran %d times, want 1", got)
	}
	d := b.deadLetters()[0]
	if d.Reason != stream.ReasonMaxDeliveries || !strings.Contains(d.Error, "without being settled") {
		t.Errorf("dead letter reason %q error %q", d.Reason, d.Error)
	}
}
