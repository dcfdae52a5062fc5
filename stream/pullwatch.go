package stream

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PullWatch notices a pull consumer that stopped pulling while its
// consumer has messages to deliver.
//
// nats.go's Consume (v1.55.0) can lose track of its pull requests: it
// sends a new one when its count of outstanding messages drops below half
// the batch, but skips that check while its previous request is still
// being sent, and checks again only on the next message. When the
// goroutine sending a request is descheduled while the rest of the batch
// arrives (a loaded 2-core machine does it every few seconds at 50k
// alerts/s), every check is skipped, the server holds no request, and the
// client waits for two missed heartbeats (2s here) before pulling again.
// Consumer info shows it: messages pending, no pull waiting.
//
// A PullWatch sees the consumer's side of it. Wrap the Consume callback
// with Wrap, and run Run next to it: after the callback has been idle for
// a while (and is not blocked handing a message on), Run asks the server
// once, then again after twice as long, up to the heartbeat's own
// recovery, and returns as soon as the consumer has messages pending and
// no pull waiting. The caller then stops that Consume and starts another.
// A busy consumer costs two atomic stores per message; an idle one a
// handful of consumer info requests per idle period.
type PullWatch struct {
	busy atomic.Bool
	last atomic.Int64 // unix nanos the callback last returned
}

// PullWatch's timing: the first look after PullIdle without a message, the
// last before the heartbeat recovery (two missed 1s heartbeats) takes over.
const (
	pullIdle      = 100 * time.Millisecond
	pullIdleLimit = 2 * time.Second
	pullInfoWait  = time.Second
)

// Wrap returns fn, recording when it runs.
func (w *PullWatch) Wrap(fn func(jetstream.Msg)) func(jetstream.Msg) {
	w.last.Store(time.Now().UnixNano())
	return func(msg jetstream.Msg) {
		w.busy.Store(true)
		fn(msg)
		w.last.Store(time.Now().UnixNano())
		w.busy.Store(false)
	}
}

// Run watches cons until ctx is done (it returns false) or the consumer is
// found stalled (it returns true). The callback being inside fn means the
// client holds messages it has not handed on, so the consumer is not
// stalled, whatever the server says.
func (w *PullWatch) Run(ctx context.Context, cons jetstream.Consumer) bool {
	tick := time.NewTicker(pullIdle / 2)
	defer tick.Stop()
	seen, wait := w.last.Load(), pullIdle
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		last := w.last.Load()
		if last != seen {
			seen, wait = last, pullIdle
		}
		if w.busy.Load() || wait > pullIdleLimit || time.Since(time.Unix(0, last)) < wait {
			continue
		}
		wait *= 2
		if stalled(ctx, cons) && !w.busy.Load() && w.last.Load() == last {
			return true
		}
	}
}

// stalled reports whether the server holds messages for cons and no pull
// request to deliver them to.
func stalled(ctx context.Context, cons jetstream.Consumer) bool {
	ctx, cancel := context.WithTimeout(ctx, pullInfoWait)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		return false // the heartbeat and Consume's error handler cover a lost consumer
	}
	return info.NumPending > 0 && info.NumWaiting == 0
}

// ConsumeWatched is cons.Consume(fn, opts...) that consumes again whenever
// a PullWatch finds the pulls stalled, until stop is called; stop returns
// once the last Consume has closed (or 5s passed). A Consume that cannot be
// started again ends it: fn gets no more messages. For consumers that need
// no more than that (benchmarks, baselines); the processor also recreates
// a lost consumer.
func ConsumeWatched(ctx context.Context, cons jetstream.Consumer, fn func(jetstream.Msg), opts ...jetstream.PullConsumeOpt) (stop func(), err error) {
	watch := new(PullWatch)
	first, err := cons.Consume(watch.Wrap(fn), opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cc := first
		for watch.Run(ctx, cons) {
			cc.Stop()
			next, err := cons.Consume(watch.Wrap(fn), opts...)
			if err != nil {
				return
			}
			cc = next
		}
		cc.Stop()
		select {
		case <-cc.Closed():
		case <-time.After(5 * time.Second):
		}
	}()
	return func() {
		cancel()
		<-done
	}, nil
}
