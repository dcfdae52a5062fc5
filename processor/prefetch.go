package processor

import (
	"sync"
	"sync/atomic"
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
//
// Redeliveries go first. An alert delivered again was held by a process
// that died (or it was nak'ed for a retry, or its marks did not reach the
// server in time): it has waited already, so it does not queue behind a
// deep buffer of new alerts; a dead process's alerts are handled as soon as
// a worker is free once their AckWait runs out. And a redelivery of an
// alert this process holds (buffered, or running: its marks were late, as
// during a cluster's leader election) is dropped: the alert runs once here,
// and the copy held settles it, whichever delivery the server counts.

// pulled is a message with its metadata, parsed once by the Consume
// callback.
type pulled struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata // nil when the message has none
	// mark is the earliest the server may have started the message's
	// AckWait (unix nanos), or when it was last marked in progress.
	mark int64
}

// seq is the alert's stream sequence, 0 without metadata.
func (p *pulled) seq() uint64 {
	if p.meta == nil {
		return 0
	}
	return p.meta.Sequence.Stream
}

// queue is a ring of alerts in arrival order that grows when full.
type queue struct {
	ring []pulled
	head int
	n    int
}

func (q *queue) push(p pulled) {
	if q.n == len(q.ring) {
		ring := make([]pulled, max(2*len(q.ring), 16))
		for i := range q.n {
			ring[i] = q.ring[(q.head+i)%len(q.ring)]
		}
		q.ring, q.head = ring, 0
	}
	q.ring[(q.head+q.n)%len(q.ring)] = p
	q.n++
}

func (q *queue) pop() pulled {
	p := q.ring[q.head]
	q.ring[q.head] = pulled{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	return p
}

// at returns the i-th oldest alert.
func (q *queue) at(i int) *pulled { return &q.ring[(q.head+i)%len(q.ring)] }

// buffer is the prefetch: alerts pulled and not yet taken by a worker, and
// the alerts the workers took and still run.
type buffer struct {
	mu    sync.Mutex
	ready sync.Cond // an alert was added, or the buffer closed
	room  sync.Cond // an alert was taken, the mode changed, or a tick passed

	again  queue // redeliveries, taken first
	fresh  queue // first deliveries
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

	// running[i] is the stream sequence of the alert worker i took and
	// whose handler has not returned yet, 0 if none. Set under mu by take,
	// cleared without it.
	running []atomic.Uint64
}

// newBuffer returns a buffer for pulls of depth alerts, taken by workers
// workers; the callback stops blocking once a batch takes slowWait to go
// through. An alert admitted after waiting lateAge or longer is to be
// marked at once.
func newBuffer(depth, workers int, slowWait, lateAge time.Duration) *buffer {
	b := &buffer{
		fresh:    queue{ring: make([]pulled, depth)},
		depth:    depth,
		slowWait: int64(slowWait),
		lateAge:  int64(lateAge),
		// A lost pull heartbeat or a reconnect makes nats.go ask for a
		// whole batch again with the old one perhaps still served: up to
		// two batches may be on their way.
		admitted: make([]int64, 2*depth),
		running:  make([]atomic.Uint64, workers),
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

// len is the number of alerts buffered. Call with b.mu held.
func (b *buffer) len() int { return b.again.n + b.fresh.n }

// put adds an alert. With a full buffer it blocks until a
// worker takes one, unless a batch has taken slowWait to go through: then
// nats.go's queue behind the callback would age, and the alert is admitted
// anyway. An alert that may have waited lateAge or longer (in nats.go's
// queue, or while the callback was blocked) is to be marked in progress at
// once (late reports it) rather than at the next tick; a younger one keeps
// the time it may have arrived, and the ticks mark it if it waits on.
//
// A redelivery of an alert the buffer holds, or a worker runs, is not
// added: held reports it, and the caller drops it.
func (b *buffer) put(msg jetstream.Msg, meta *jetstream.MsgMetadata) (late, held bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := time.Now().UnixNano()
	over := b.draining
	for b.len() >= b.depth && !over && !b.closed {
		if t-b.arrivedAfter(b.depth) >= b.slowWait {
			over = true
			break
		}
		b.room.Wait()
		t = time.Now().UnixNano()
	}
	mark := min(b.arrivedAfter(2*b.depth), t)
	b.admitted[b.count%uint64(len(b.admitted))] = t
	b.count++
	if meta != nil && meta.NumDelivered > 1 && b.holds(meta.Sequence.Stream) {
		return false, true
	}
	if t-mark >= b.lateAge {
		mark, late = t, true
	}
	p := pulled{msg: msg, meta: meta, mark: mark}
	if meta != nil && meta.NumDelivered > 1 {
		b.again.push(p)
	} else {
		b.fresh.push(p)
	}
	b.ready.Signal()
	return late, false
}

// holds reports whether the alert of stream sequence seq is buffered or
// running. Call with b.mu held; it looks at every alert, so only for
// redeliveries.
func (b *buffer) holds(seq uint64) bool {
	for i := range b.running {
		if b.running[i].Load() == seq {
			return true
		}
	}
	for _, q := range []*queue{&b.again, &b.fresh} {
		for i := range q.n {
			if q.at(i).seq() == seq {
				return true
			}
		}
	}
	return false
}

// take returns the oldest redelivery, or else the oldest alert, waiting for
// one, and records it as worker's until done; ok is false once the buffer
// is closed.
func (b *buffer) take(worker int) (p pulled, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.len() == 0 && !b.closed {
		b.ready.Wait()
	}
	if b.closed {
		return pulled{}, false
	}
	if b.again.n > 0 {
		p = b.again.pop()
	} else {
		p = b.fresh.pop()
	}
	b.running[worker].Store(p.seq())
	b.room.Signal()
	return p, true
}

// done records that worker's handler returned.
func (b *buffer) done(worker int) { b.running[worker].Store(0) }

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
	for _, q := range []*queue{&b.again, &b.fresh} {
		for i := range q.n {
			if p := q.at(i); p.mark < before {
				p.mark = now
				due = append(due, p.msg)
			}
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
	left := make([]pulled, 0, b.len())
	for _, q := range []*queue{&b.again, &b.fresh} {
		for q.n > 0 {
			left = append(left, q.pop())
		}
	}
	b.mu.Unlock()
	b.ready.Broadcast()
	b.room.Broadcast()
	return left
}
