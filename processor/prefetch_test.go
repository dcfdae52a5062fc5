package processor_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// publishBatch stores n alerts on subject with async publishes.
func (b *bundle) publishBatch(n int, subject string) {
	b.t.Helper()
	pub := stream.NewPublisher(b.conn.JS, stream.PublisherConfig{})
	msgs := make([]*nats.Msg, 0, n)
	for i := range n {
		msgs = append(msgs, &nats.Msg{Subject: subject, Data: []byte("{}"),
			Header: nats.Header{nats.MsgIdHdr: []string{subject + "-" + strconv.Itoa(i)}}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if failed := pub.PublishBatch(ctx, msgs, nil); failed > 0 {
		b.t.Fatalf("%d of %d publishes failed", failed, n)
	}
}

// prefetchRun processes a backlog of n alerts with the default prefetch, 16
// workers and an AckWait of 2s, each handler call taking work, with or
// without DoubleAck, and returns how many deliveries were redeliveries.
func prefetchRun(t *testing.T, n int, work time.Duration, doubleAck bool) (redelivered int64) {
	b := setup(t)
	b.cfg.Workers = 16
	b.cfg.AckWait = 2 * time.Second
	b.cfg.Prefetch = 0 // the default
	b.cfg.DoubleAck = doubleAck
	// The processor's own log, without the line per alert, for a failure.
	logs := &logBuffer{}
	b.cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			for line := range strings.Lines(logs.String()) {
				if !strings.Contains(line, "msg=\"alert ") {
					t.Log(strings.TrimSpace(line))
				}
			}
		}
	})
	var acked, again atomic.Int64
	b.cfg.OnOutcome = func(r processor.Result) {
		if r.Message.Delivered() > 1 {
			again.Add(1)
			t.Logf("%s redelivered: seq %d, delivery %d", time.Now().Format("15:04:05.000"), r.Message.Sequence(), r.Message.Delivered())
		}
		if r.SettleErr != nil {
			t.Errorf("seq %d: settle: %v", r.Message.Sequence(), r.SettleErr)
		}
		if r.Outcome == processor.OutcomeAck {
			acked.Add(1)
		}
	}
	b.router.On("alerts.>", func(context.Context, *processor.Message) error {
		if work > 0 {
			time.Sleep(work)
		}
		return nil
	})
	b.publishBatch(n, "alerts.prefetch")
	b.start()
	deadline := time.Duration(n)*work/16*2 + 30*time.Second
	streamtest.Eventually(t, deadline, func() error {
		if got := acked.Load(); got < int64(n) {
			return fmt.Errorf("%d of %d alerts acked", got, n)
		}
		return nil
	})
	// Every ack reached the group's consumer.
	streamtest.Eventually(t, 10*time.Second, func() error {
		pending, ackPending, ok := streamtest.ConsumerPending(b.conn.JS, b.topo.Alerts, processor.GroupDefault)
		if !ok || pending != 0 || ackPending != 0 {
			return fmt.Errorf("group pending %d, ack pending %d (info ok %v), want 0", pending, ackPending, ok)
		}
		return nil
	})
	return again.Load()
}

// A prefetch of 500 alerts that take 200ms each with 16 workers is 6s of
// work, three times the AckWait: the buffered alerts are marked in
// progress, and the buffer stops holding back pulls that would wait in
// nats.go's queue, so none is redelivered. With DoubleAck the prefetch is
// as deep, and slow handlers see no redelivery either: a buffer that held
// the pulls back whatever the wait would leave up to a batch ageing in
// nats.go's queue, past the AckWait. At full speed nothing waits long
// enough to need a mark.
func TestPrefetchNoRedelivery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		alerts    int
		work      time.Duration
		doubleAck bool
	}{
		{"slow handlers", 3000, 200 * time.Millisecond, false},
		{"full speed", 20000, 0, false},
		{"double ack, slow handlers", 3000, 200 * time.Millisecond, true},
		{"double ack, full speed", 20000, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if again := prefetchRun(t, tc.alerts, tc.work, tc.doubleAck); again != 0 {
				t.Errorf("%d redeliveries, want 0", again)
			}
		})
	}
}

// DoubleAck keeps the default prefetch: a prefetch of one alert per worker
// leaves workers waiting for pulls between their acks' round trips.
func TestPrefetchDoubleAckDefault(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cfg.Prefetch = 0
	b.cfg.DoubleAck = true
	p, err := processor.New(b.conn.JS, b.router, b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Config().Prefetch; got != processor.PrefetchDefault {
		t.Errorf("prefetch %d with DoubleAck, want PrefetchDefault %d", got, processor.PrefetchDefault)
	}
}
