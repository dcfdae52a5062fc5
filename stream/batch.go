package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// batch is what one PublishBatch call has in flight: its first sends,
// oldest first, in a ring of slots, and the channel their PubAcks come
// back on.
type batch struct {
	p       *Publisher
	ctx     context.Context
	results chan ackResult
	ring    []inflight
	head, n int
	timer   *time.Timer // made by the first wait that blocks
	// now is when the sends going out now are sent, to the precision a
	// PubAck deadline needs: read at the start, around each wait that
	// blocks and after a fallback Publish, not per send.
	now time.Time
	// reconnecting tells of a reconnect: the sends in flight may have been
	// lost with the old connection, and are published again at once.
	reconnecting chan nats.Status
}

// inflight is one message's first send.
type inflight struct {
	index int // in the batch
	token uint64
	sent  time.Time
	done  bool
	ack   *jetstream.PubAck
	err   error
}

func (p *Publisher) newBatch(ctx context.Context, size int) *batch {
	return &batch{
		p:            p,
		ctx:          ctx,
		results:      make(chan ackResult, size),
		ring:         make([]inflight, size),
		reconnecting: p.acks.nc.StatusChanged(nats.RECONNECTING),
		now:          time.Now(),
	}
}

func (b *batch) close() {
	for ; b.n > 0; b.n-- {
		b.p.acks.forget(b.ring[b.head].token)
		b.head = (b.head + 1) % len(b.ring)
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	b.p.acks.nc.RemoveStatusListener(b.reconnecting)
}

func (b *batch) full() bool  { return b.n == len(b.ring) }
func (b *batch) empty() bool { return b.n == 0 }

// send publishes msgs[i] = msg into the next slot.
func (b *batch) send(i int, msg *nats.Msg) error {
	slot := (b.head + b.n) % len(b.ring)
	token, err := b.p.acks.send(msg, b.results, slot)
	if err != nil {
		return err
	}
	b.ring[slot] = inflight{index: i, token: token, sent: b.now}
	b.n++
	return nil
}

// finish waits for the oldest send's outcome and frees its slot. A send
// that failed or went unanswered is published again with Publish, unless
// the error says that cannot help or ctx is done.
func (b *batch) finish(msgs []*nats.Msg) Result {
	e := &b.ring[b.head]
	for !e.done {
		b.wait(e)
	}
	b.head = (b.head + 1) % len(b.ring)
	b.n--
	r := Result{Index: e.index, Ack: e.ack, Err: e.err}
	if r.Err == nil || b.ctx.Err() != nil {
		return r
	}
	msg := msgs[e.index]
	if !retryable(r.Err) {
		r.Err = refused(msg, r.Err)
		return r
	}
	ack, err := b.p.Publish(b.ctx, msg)
	b.now = time.Now()
	if err != nil {
		err = fmt.Errorf("%w (async: %w)", err, r.Err)
	}
	r.Ack, r.Err = ack, err
	return r
}

// wait takes one step towards e's outcome: an answer that came back (e's
// or another's), e's timeout, a reconnect, or ctx's end.
func (b *batch) wait(e *inflight) {
	select {
	case res := <-b.results:
		b.record(res)
		return
	default:
	}
	b.now = time.Now()
	defer func() { b.now = time.Now() }() // the sends after it go out then
	d := e.sent.Add(b.p.cfg.AttemptTimeout).Sub(b.now)
	if d <= 0 {
		b.give(e, jetstream.ErrAsyncPublishTimeout)
		return
	}
	if b.timer == nil {
		b.timer = time.NewTimer(d)
	} else {
		b.timer.Reset(d)
	}
	select {
	case res := <-b.results:
		b.record(res)
	case <-b.timer.C:
		b.give(e, jetstream.ErrAsyncPublishTimeout)
	case <-b.reconnecting:
		// As nats.go fails its futures on a reconnect: what was in flight
		// may be lost.
		for k := range b.n {
			b.give(&b.ring[(b.head+k)%len(b.ring)], nats.ErrDisconnected)
		}
	case <-b.ctx.Done():
		b.give(e, context.Cause(b.ctx))
	}
}

// record keeps an answer for its send.
func (b *batch) record(res ackResult) {
	e := &b.ring[res.slot]
	if e.token == res.token && !e.done {
		e.done, e.ack, e.err = true, res.ack, res.err
	}
}

// give ends the wait for e's answer with err, unless the answer is on its
// way already.
func (b *batch) give(e *inflight, err error) {
	if !e.done && b.p.acks.forget(e.token) {
		e.done, e.err = true, err
	}
}
