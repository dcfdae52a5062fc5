package processor

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The prefetch.
//
// Consume pulls up to depth alerts ahead of the workers (its
// PullMaxMessages). Their AckWait runs from the moment the server sends
// them, so an alert must not wait longer than that anywhere. They wait in
// two places:
//
//   - the buffer, ours: the Consume callback appends each alert, workers
//     take them in order, and one ticker marks those that have waited long
//     (InProgress), as it marks the alerts whose handler runs long;
//   - nats.go's own queue, out of our reach: up to depth alerts delivered
//     while the callback is blocked on a full buffer.
//
// A full buffer blocks the callback, which holds nats.go's pulls back. That
// is what bounds memory and keeps one process from taking every alert of a
// group; it is safe as long as nats.go's queue drains well within AckWait,
// that is while depth alerts are handled in less than AckWait/8 (always
// with fast handlers at the default depth). When they are not (slow
// handlers, or handlers that suddenly slow down), the callback stops
// blocking, the processor drains that Consume into the buffer, where the
// ticker marks what waits, and consumes again with a depth of about
// AckWait/16 worth of alerts at the rate the workers go. When the workers
// speed up the depth grows back the same way, up to Config.Prefetch.

// pulled is a message with its metadata, parsed once by the Consume
// callback.
type pulled struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata // nil when the message has none
	// mark is the earliest the server may have started the message's
	// AckWait (unix nanos), or when it was last marked in progress.
	mark int64
}

// buffer is the prefetch: alerts pulled and not yet taken by a worker.
type buffer struct {
	mu    sync.Mutex
	ready sync.Cond // an alert was added, or the buffer closed
	room  sync.Cond // an alert was taken, the mode changed, or a tick passed

	ring   []pulled
	head   int
	n      int
	closed bool

	depth    int  // the current pull size; the callback blocks at depth buffered
	overflow bool // admit without blocking: the pulls are being resized or drained
	slowWait int64

	// admitted holds the times of the last len(admitted) admissions, by
	// admission count, to bound how long nats.go's queue can have held the
	// alerts the callback admits now.
	admitted []int64
	count    uint64
	since    int64  // when the current Consume started
	base     uint64 // count when it started

	taken uint64 // alerts taken by workers so far

	low   int           // waitBelow's target
	lowCh chan struct{} // closed when n <= low
}

// newBuffer returns a buffer for pulls of at most limit alerts; the
// callback stops blocking once depth alerts take slowWait to go through.
func newBuffer(limit, depth int, slowWait time.Duration) *buffer {
	b := &buffer{
		ring:     make([]pulled, limit),
		depth:    depth,
		slowWait: int64(slowWait),
		// A lost pull heartbeat or a reconnect makes nats.go ask for a
		// whole batch again with the old one perhaps still served: up to
		// two batches may be on their way.
		admitted: make([]int64, 2*limit),
	}
	b.ready.L = &b.mu
	b.room.L = &b.mu
	return b
}

// started records that a Consume with the current depth started at now.
func (b *buffer) started(now time.Time) {
	b.mu.Lock()
	b.since, b.base = now.UnixNano(), b.count
	b.mu.Unlock()
}

// arrivedAfter is the earliest time the alerts delivered within the last
// back admissions can have been sent: nats.go asks for no more than a batch
// beyond what its callback returned. Call with b.mu held.
func (b *buffer) arrivedAfter(back int) int64 {
	if b.count-b.base < uint64(back) {
		return b.since
	}
	return max(b.since, b.admitted[(b.count-uint64(back))%uint64(len(b.admitted))])
}

// put adds an alert pulled at now. With a full buffer it blocks until a
// worker takes one, unless that would keep alerts in nats.go's queue too
// long: then it admits the alert anyway and reports slow, and the caller
// should have the pulls resized. An alert admitted without blocking may
// have waited in nats.go's queue: it is marked in progress at once (late
// reports it) rather than at the next tick.
func (b *buffer) put(msg jetstream.Msg, meta *jetstream.MsgMetadata, now time.Time) (slow, late bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.n >= b.depth && !b.overflow && !b.closed {
		t := time.Now().UnixNano()
		if t-b.arrivedAfter(b.depth) >= b.slowWait {
			b.overflow, slow = true, true
			break
		}
		b.room.Wait()
	}
	t := now.UnixNano()
	mark := min(b.arrivedAfter(2*b.depth), t)
	if b.overflow && t-mark >= b.slowWait {
		mark, late = t, true
	}
	if b.n == len(b.ring) {
		b.grow()
	}
	b.ring[(b.head+b.n)%len(b.ring)] = pulled{msg: msg, meta: meta, mark: mark}
	b.n++
	b.admitted[b.count%uint64(len(b.admitted))] = t
	b.count++
	b.ready.Signal()
	return slow, late
}

// grow doubles the ring: only while a Consume is drained into it.
func (b *buffer) grow() {
	ring := make([]pulled, 2*len(b.ring))
	for i := range b.n {
		ring[i] = b.ring[(b.head+i)%len(b.ring)]
	}
	b.ring, b.head = ring, 0
}

// take returns the oldest alert, waiting for one; ok is false once the
// buffer is closed.
func (b *buffer) take() (p pulled, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.n == 0 && !b.closed {
		b.ready.Wait()
	}
	if b.closed {
		return pulled{}, false
	}
	p = b.ring[b.head]
	b.ring[b.head] = pulled{}
	b.head = (b.head + 1) % len(b.ring)
	b.n--
	b.taken++
	b.room.Signal()
	if b.lowCh != nil && b.n <= b.low {
		close(b.lowCh)
		b.lowCh = nil
	}
	return p, true
}

// setOverflow makes put admit without blocking (on), or block on a full
// buffer again with a new depth (off).
func (b *buffer) setOverflow(on bool, depth int) {
	b.mu.Lock()
	b.overflow = on
	if depth > 0 {
		b.depth = depth
	}
	b.mu.Unlock()
	b.room.Broadcast()
}

// waitBelow returns a channel closed once at most n alerts are buffered.
func (b *buffer) waitBelow(n int) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan struct{})
	if b.n <= n || b.closed {
		close(ch)
		return ch
	}
	if b.lowCh != nil {
		close(b.lowCh)
	}
	b.low, b.lowCh = n, ch
	return ch
}

// mark calls fn, outside the lock, with every buffered alert whose mark is
// older than before, and moves their marks to now.
func (b *buffer) mark(before, now int64, fn func(jetstream.Msg)) {
	var due []jetstream.Msg
	b.mu.Lock()
	for i := range b.n {
		p := &b.ring[(b.head+i)%len(b.ring)]
		if p.mark < before {
			p.mark = now
			due = append(due, p.msg)
		}
	}
	b.mu.Unlock()
	for _, m := range due {
		fn(m)
	}
}

// tick wakes a callback blocked on a full buffer, so that it looks again
// at how long nats.go's queue has waited, and returns the number of alerts
// taken so far and the current depth.
func (b *buffer) tick() (taken uint64, depth int) {
	b.mu.Lock()
	taken, depth = b.taken, b.depth
	b.mu.Unlock()
	b.room.Broadcast()
	return taken, depth
}

// close wakes everyone up for good and returns what is still buffered.
func (b *buffer) close() []pulled {
	b.mu.Lock()
	b.closed = true
	left := make([]pulled, 0, b.n)
	for i := range b.n {
		left = append(left, b.ring[(b.head+i)%len(b.ring)])
	}
	b.n = 0
	if b.lowCh != nil {
		close(b.lowCh)
		b.lowCh = nil
	}
	b.mu.Unlock()
	b.ready.Broadcast()
	b.room.Broadcast()
	return left
}

// depthFor is the pull size that the workers, taking rate alerts a second,
// go through in about ackWait/16 (half the wait that makes the callback
// stop blocking), within [1, limit].
func depthFor(rate float64, ackWait time.Duration, limit int) int {
	d := int(rate * ackWait.Seconds() / 16)
	return min(limit, max(1, d))
}

// current is the pull size.
func (b *buffer) current() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.depth
}
