// Package pullwatch works around a stall of nats.go's Consume: a pull
// consumer that stops pulling while its consumer has messages to deliver.
//
// The cause is upstream, nats.go#2063 (fix proposed in nats.go PR #2090):
// Consume (jetstream/pull.go, v1.55.0) sends a new pull request when its
// count of outstanding messages drops below half the batch, but
// checkPending skips that check while fetchInProgress is set (its previous
// request is still being sent), and checks again only on the next message.
// When the goroutine sending a request is descheduled while the rest of
// the batch arrives (a loaded machine does it, at any batch size), every
// check is skipped, the server holds no request, and the client waits for
// two missed heartbeats before pulling again. Consumer info shows it: messages pending, no pull waiting.
// TestUpstreamStillSkipsCheckPending fails once nats.go no longer has that
// code path: then this package can go.
package pullwatch

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Watch sees the consumer's side of the stall. Wrap the Consume callback
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
type Watch struct {
	busy    atomic.Bool
	last    atomic.Int64  // unix nanos the callback last returned
	pending atomic.Uint64 // what the last delivery said was left
	seq     atomic.Uint64 // the last delivery's consumer sequence
}

// Watch's timing: the first look after pullSuspect without a message
// when the last delivery left messages behind it, else after pullIdle; the
// last look before the heartbeat recovery (two missed heartbeats: 1s at
// the processor's 500ms) takes over; how often a parked watch looks for
// activity; how long after a stall is seen it is confirmed.
const (
	pullSuspect   = 20 * time.Millisecond
	pullIdle      = 100 * time.Millisecond
	pullIdleLimit = time.Second
	pullPark      = 100 * time.Millisecond
	pullConfirm   = 30 * time.Millisecond
	pullInfoWait  = time.Second
)

// Wrap returns a Consume callback that calls fn, recording when it runs and
// what each message's metadata says of the consumer. fn gets the metadata
// too, parsed once; it is nil for a message without JetStream metadata.
func (w *Watch) Wrap(fn func(jetstream.Msg, *jetstream.MsgMetadata)) func(jetstream.Msg) {
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
func (w *Watch) Run(ctx context.Context, cons jetstream.Consumer) bool {
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
func (w *Watch) stalled(ctx context.Context, cons jetstream.Consumer, last int64) bool {
	return serverStalled(ctx, cons, w.seq.Load()) && !w.busy.Load() && w.last.Load() == last
}

// confirm looks again after pullConfirm. A pull request the client has
// queued but not sent yet (its sender descheduled, the cause of the stall
// itself) is not waiting at the server either: stopping that Consume then
// would let the request through to an inbox about to close, and the
// deliveries it gets would wait out AckWait. Such a request arrives within
// milliseconds; a stall persists.
func (w *Watch) confirm(ctx context.Context, cons jetstream.Consumer, last int64) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(pullConfirm):
	}
	return w.stalled(ctx, cons, last)
}

// lookAfter is how long the callback must have been idle before the next
// look at the server, after looks looks since its last message.
func (w *Watch) lookAfter(looks int) time.Duration {
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
