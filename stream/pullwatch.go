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
// with Wrap, and run Run next to it. When the callback has been idle for a
// while (and is not blocked handing a message on), Run asks the server,
// and returns as soon as the consumer has messages pending, no pull
// waiting and nothing delivered that the callback has not seen; the caller
// then stops that Consume and starts another. Each delivery says how many
// messages the consumer had left behind it: if the last said some, an idle
// callback is most likely stalled, and Run looks after 20ms; otherwise the
// stream was drained, and Run looks after 100ms, then twice as long each
// time, up to the heartbeat's own recovery. A busy consumer costs a
// metadata parse and a few atomic stores per message; an idle one a
// handful of consumer info requests per idle period.
type PullWatch struct {
	busy    atomic.Bool
	last    atomic.Int64  // unix nanos the callback last returned
	pending atomic.Uint64 // what the last delivery said was left
	seq     atomic.Uint64 // the last delivery's consumer sequence
}

// PullWatch's timing: the first look after pullSuspect without a message
// when the last delivery left messages behind it, else after pullIdle; the
// last look before the heartbeat recovery (two missed 1s heartbeats) takes
// over; how often a parked watch looks for activity; how long after a
// stall is seen it is confirmed.
const (
	pullSuspect   = 20 * time.Millisecond
	pullIdle      = 100 * time.Millisecond
	pullIdleLimit = 2 * time.Second
	pullPark      = 100 * time.Millisecond
	pullConfirm   = 30 * time.Millisecond
	pullInfoWait  = time.Second
)

// Wrap returns a Consume callback that calls fn, recording when it runs and
// what each message's metadata says of the consumer. fn gets the metadata
// too, parsed once; it is nil for a message without JetStream metadata.
func (w *PullWatch) Wrap(fn func(jetstream.Msg, *jetstream.MsgMetadata)) func(jetstream.Msg) {
	w.last.Store(time.Now().UnixNano())
	return func(msg jetstream.Msg) {
		w.busy.Store(true)
		md, err := msg.Metadata()
		if err == nil {
			w.pending.Store(md.NumPending)
			w.seq.Store(md.Sequence.Consumer)
		}
		fn(msg, md)
		w.last.Store(time.Now().UnixNano())
		w.busy.Store(false)
	}
}

// Run watches cons until ctx is done (it returns false) or the consumer is
// found stalled (it returns true). The callback being inside fn means the
// client holds messages it has not handed on, so the consumer is not
// stalled, whatever the server says.
func (w *PullWatch) Run(ctx context.Context, cons jetstream.Consumer) bool {
	timer := time.NewTimer(pullSuspect)
	defer timer.Stop()
	seen, looks := w.last.Load(), 0
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
		}
		last := w.last.Load()
		if last != seen {
			seen, looks = last, 0
		}
		after := w.lookAfter(looks)
		if w.busy.Load() || after > pullIdleLimit {
			timer.Reset(min(pullPark, max(after, pullSuspect)))
			continue
		}
		if idle := time.Since(time.Unix(0, last)); idle < after {
			timer.Reset(after - idle)
			continue
		}
		looks++
		if w.stalled(ctx, cons, last) && w.confirm(ctx, cons, last) {
			return true
		}
		timer.Reset(pullSuspect)
	}
}

// stalled is the server's view of a stall, with the callback still idle
// since last.
func (w *PullWatch) stalled(ctx context.Context, cons jetstream.Consumer, last int64) bool {
	return serverStalled(ctx, cons, w.seq.Load()) && !w.busy.Load() && w.last.Load() == last
}

// confirm looks again after pullConfirm. A pull request the client has
// queued but not sent yet (its sender descheduled, the cause of the stall
// itself) is not waiting at the server either: stopping that Consume then
// would let the request through to an inbox about to close, and the
// deliveries it gets would wait out AckWait. Such a request arrives within
// milliseconds; a stall persists.
func (w *PullWatch) confirm(ctx context.Context, cons jetstream.Consumer, last int64) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(pullConfirm):
	}
	return w.stalled(ctx, cons, last)
}

// lookAfter is how long the callback must have been idle before the next
// look at the server, after looks looks since its last message.
func (w *PullWatch) lookAfter(looks int) time.Duration {
	if looks == 0 && w.pending.Load() > 0 {
		return pullSuspect
	}
	if w.pending.Load() > 0 {
		looks-- // the first look was the quick one
	}
	return pullIdle << looks
}

// serverStalled reports whether the server holds messages for cons and no pull
// request to deliver them to, and has delivered nothing past seen, the
// last delivery the callback got: a delivery in transit (read late by a
// busy client) is not a stall, and stopping that Consume would drop it
// until AckWait. With other clients on the consumer their deliveries look
// the same, so a stall is only reported for the client that got the last
// one; the heartbeat recovers the others.
func serverStalled(ctx context.Context, cons jetstream.Consumer, seen uint64) bool {
	ctx, cancel := context.WithTimeout(ctx, pullInfoWait)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		return false // the heartbeat and Consume's error handler cover a lost consumer
	}
	return info.NumPending > 0 && info.NumWaiting == 0 && info.Delivered.Consumer == seen
}

// ConsumeWatched is cons.Consume(opts...) with fn, given each message and
// its metadata as PullWatch.Wrap does, that consumes again whenever
// a PullWatch finds the pulls stalled, until stop is called; stop returns
// once the last Consume has closed (or 5s passed). A Consume that cannot be
// started again ends it: fn gets no more messages. For consumers that need
// no more than that (benchmarks, baselines); the processor also recreates
// a lost consumer.
func ConsumeWatched(ctx context.Context, cons jetstream.Consumer, fn func(jetstream.Msg, *jetstream.MsgMetadata), opts ...jetstream.PullConsumeOpt) (stop func(), err error) {
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
