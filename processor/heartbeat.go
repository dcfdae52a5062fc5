package processor

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// slot is what one worker is handling, for the heartbeat and the shutdown.
type slot struct {
	mu   sync.Mutex
	d    *delivery
	mark int64 // unix nanos, as pulled.mark

	confirm *confirmer // the worker's, with DoubleAck

	worker int     // the slot's index
	buf    *buffer // told when the handler returns
}

func (s *slot) set(d *delivery, mark int64) {
	s.mu.Lock()
	s.d, s.mark = d, mark
	s.mu.Unlock()
}

// clear records that the handler returned: a redelivery of its alert is
// no longer a duplicate of a running handler.
func (s *slot) clear() {
	s.mu.Lock()
	s.d = nil
	s.mu.Unlock()
	if s.buf != nil {
		s.buf.done(s.worker)
	}
}

// get returns the delivery in s, nil if none.
func (s *slot) get() *delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d
}

// tickEvery is how often the heartbeat ticks: twice per Heartbeat, and at
// least six times per AckWait, for the prefetch's sake (a callback blocked
// on a full buffer looks again at each tick).
func (c Config) tickEvery() time.Duration {
	t := c.AckWait / 6
	if c.Heartbeat > 0 {
		t = min(t, c.Heartbeat/2)
	}
	return max(t, time.Millisecond)
}

// waitMark is how long an alert waiting in the prefetch may go without a
// mark: half its AckWait, or Heartbeat if that is longer. A mark costs the
// server what an ack costs, and alerts that wait briefly (all of them, with
// fast handlers) need none.
func (c Config) waitMark() time.Duration {
	return max(c.Heartbeat, c.AckWait/2)
}

// heartbeat is one ticker for every alert the process holds: each tick it
// marks in progress those being handled that would otherwise go a whole
// Heartbeat without a mark by the next tick, and those buffered that would
// go waitMark without one. It returns when stop is closed.
func (p *Processor) heartbeat(stop <-chan struct{}) {
	every := p.cfg.tickEvery()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var now time.Time
		select {
		case <-stop:
			return
		case now = <-t.C:
		}
		p.buf.tick()
		if p.cfg.Heartbeat > 0 {
			nanos := now.UnixNano()
			p.buf.mark(nanos+int64(every)-int64(p.cfg.waitMark()), nanos, p.markInProgress)
			p.markRunning(nanos+int64(every)-int64(p.cfg.Heartbeat), nanos, p.markInProgress)
		}
	}
}

// markInProgress tells the server m is being worked on: its AckWait starts
// over.
func (p *Processor) markInProgress(m jetstream.Msg) {
	p.marks.Add(1)
	if err := m.InProgress(); err != nil {
		p.log.Debug("in-progress heartbeat failed", "err", err)
	}
}

// markRunning marks the alerts being handled whose mark is older than
// before.
func (p *Processor) markRunning(before, now int64, fn func(jetstream.Msg)) {
	for i := range p.slots {
		s := &p.slots[i]
		s.mu.Lock()
		d := s.d
		due := d != nil && s.mark < before
		if due {
			s.mark = now
		}
		s.mu.Unlock()
		if due && !d.settled.Load() {
			fn(d.msg)
		}
	}
}
