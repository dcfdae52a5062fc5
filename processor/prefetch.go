package processor

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The prefetch.
//
// Consume pulls up to Prefetch alerts ahead of the workers (its
// PullMaxMessages). Their AckWait runs from the moment the server sends
// them, so an alert must not wait longer than that anywhere. They wait in
// two places:
//
//   - the buffer, ours: the Consume callback appends each alert, workers
//     take them in order, and one ticker marks those that have waited long
//     (InProgress), as it marks the alerts whose handler runs long;
//   - nats.go's own queue, out of our reach: up to a batch delivered while
//     the callback is blocked on a full buffer.
//
// Marks cost the server what acks cost (a raft proposal when the consumer
// is replicated, a state write), so an alert waiting in the buffer is
// marked only once it has waited half its AckWait (markAge): with fast
// handlers a batch goes through in milliseconds and no buffered alert is
// ever marked.
//
// A full buffer blocks the callback, which holds nats.go's pulls back. That
// is what bounds memory and keeps one process from taking every alert of a
// group; it is safe while nats.go's queue drains well within AckWait, that
// is while a batch goes through the callback in less than AckWait/8
// (always with fast handlers). When it does not (slow handlers, or handlers
// that suddenly slow down), the callback stops blocking: it admits what
// nats.go delivers, and the buffer grows until the group's MaxAckPending
// stops the server; every alert it holds is marked in progress. The
// callback blocks again once batches go through quickly.
//
// Changing the pull size instead would mean stopping a Consume and
// starting another, and the server drops what it had queued for the old
// one's inbox (the deliveries then wait out AckWait): tried, and each
// resize cost tens of redeliveries.

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

	depth    int // the pull size; the callback blocks at depth buffered
	slowWait int64
	// lateAge is how long an alert may have waited when put admits it
	// and still be left to the next tick's marks; older, it is marked at
	// once.
	lateAge int64

	// admitted holds the times of the last len(admitted) admissions, by
	// admission count, to bound how long nats.go's queue can have held the
	// alerts the callback admits now.
	admitted []int64
	count    uint64
	since    int64  // when the current Consume started
	base     uint64 // count when it started

	draining bool // admit without blocking: the Consume is being drained
}

// newBuffer returns a buffer for pulls of depth alerts; the callback stops
// blocking once a batch takes slowWait to go through. An alert admitted
// after waiting lateAge or longer is to be marked at once.
func newBuffer(depth int, slowWait, lateAge time.Duration) *buffer {
	b := &buffer{
		ring:     make([]pulled, depth),
		depth:    depth,
		slowWait: int64(slowWait),
		lateAge:  int64(lateAge),
		// A lost pull heartbeat or a reconnect makes nats.go ask for a
		// whole batch again with the old one perhaps still served: up to
		// two batches may be on their way.
		admitted: make([]int64, 2*depth),
	}
	b.ready.L = &b.mu
	b.room.L = &b.mu
	return b
}

// started records that a Consume started at now.
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

// put adds an alert. With a full buffer it blocks until a
// worker takes one, unless a batch has taken slowWait to go through: then
// nats.go's queue behind the callback would age, and the alert is admitted
// anyway. An alert that may have waited lateAge or longer (in nats.go's
// queue, or while the callback was blocked) is to be marked in progress at
// once (late reports it) rather than at the next tick; a younger one keeps
// the time it may have arrived, and the ticks mark it if it waits on.
func (b *buffer) put(msg jetstream.Msg, meta *jetstream.MsgMetadata) (late bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := time.Now().UnixNano()
	over := b.draining
	for b.n >= b.depth && !over && !b.closed {
		if t-b.arrivedAfter(b.depth) >= b.slowWait {
			over = true
			break
		}
		b.room.Wait()
		t = time.Now().UnixNano()
	}
	mark := min(b.arrivedAfter(2*b.depth), t)
	if t-mark >= b.lateAge {
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
	return late
}

// grow doubles the ring: only while batches go through slowly.
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
	b.room.Signal()
	return p, true
}

// drain makes put admit without blocking, while a Consume is drained.
func (b *buffer) drain() {
	b.mu.Lock()
	b.draining = true
	b.mu.Unlock()
	b.room.Broadcast()
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
// at how long nats.go's queue has waited.
func (b *buffer) tick() { b.room.Broadcast() }

// close wakes everyone up for good and returns what is still buffered.
func (b *buffer) close() []pulled {
	b.mu.Lock()
	b.closed = true
	left := make([]pulled, 0, b.n)
	for i := range b.n {
		left = append(left, b.ring[(b.head+i)%len(b.ring)])
	}
	b.n = 0
	b.mu.Unlock()
	b.ready.Broadcast()
	b.room.Broadcast()
	return left
}
