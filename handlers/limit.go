package handlers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// Rates are per process: each `reactor run` of a group enforces an entry's
// rate on its own runs, without asking the others, so a group of N
// processes runs an entry at most N times its rate. A rate shared by the
// group would cost a JetStream round trip (a compare-and-set) per alert on
// a key every process contends for. Concurrency is the group's (see
// lease.go): a limit of runs at once protects what the runs act on (a
// host, an API), which does not care how many processes there are.

// limitWaitMin and limitWaitMax bound how long an alert over the
// concurrency limit waits before it is delivered again; limitWaitFirst is
// the wait before any run has ended, when their length is unknown.
const (
	limitWaitMin   = 10 * time.Millisecond
	limitWaitMax   = 30 * time.Second
	limitWaitFirst = 250 * time.Millisecond
)

// limiter enforces an entry's LimitConfig in this process. An alert over the
// rate reserves the next free slot and is told to come back then; when it
// does (the same stream sequence), the slot is its own. Slots are spaced
// interval apart (after a burst), so runs keep the rate whatever the order
// in which deferred alerts come back.
type limiter struct {
	interval time.Duration // 0: no rate limit
	burst    int
	conc     *concurrency // nil: no concurrency limit
	now      func() time.Time

	mu       sync.Mutex
	tat      time.Time            // theoretical arrival time of the next slot
	reserved map[string]time.Time // holder -> its slot
	avgRun   time.Duration        // moving average of run durations
}

func (x LimitConfig) parse() (*limiter, error) {
	l := &limiter{burst: max(x.Burst, 1), now: time.Now, reserved: make(map[string]time.Time)}
	if x.Rate == "" && x.Concurrent == 0 {
		return nil, errors.New(`set rate ("10/m") or concurrent, or both`)
	}
	if x.Rate != "" {
		n, per, err := parseRate(x.Rate)
		if err != nil {
			return nil, err
		}
		l.interval = per / time.Duration(n)
		if l.interval <= 0 {
			return nil, fmt.Errorf("rate %q: too fast to space runs", x.Rate)
		}
	}
	if x.Burst < 0 || (x.Burst > 0 && x.Rate == "") {
		return nil, fmt.Errorf("burst %d: want a positive number, with a rate", x.Burst)
	}
	if x.Concurrent < 0 {
		return nil, fmt.Errorf("concurrent %d: want a positive number", x.Concurrent)
	}
	if x.Concurrent == 0 && (x.Per != "" || x.Lease != 0) {
		return nil, errors.New("per and lease go with concurrent: give the most runs at once, e.g. concurrent: 1")
	}
	if x.Concurrent > 0 {
		c, err := newConcurrency(x.Concurrent, x.Per, x.Lease)
		if err != nil {
			return nil, err
		}
		l.conc = c
	}
	return l, nil
}

// parseRate parses "10/m": N runs per second (s), minute (m), hour (h) or
// Go duration ("5/30s").
func parseRate(s string) (int, time.Duration, error) {
	want := fmt.Errorf(`rate %q: want runs per period, e.g. "10/s", "10/m", "100/h" or "5/30s"`, s)
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 1 {
		return 0, 0, want
	}
	var per time.Duration
	switch unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		if per, err = time.ParseDuration(unit); err != nil || per <= 0 {
			return 0, 0, want
		}
	}
	return n, per, nil
}

// limitRun is a run the limits let through: ctx to run it with (cancelled
// if its concurrency slot is lost), and done to call when it is over.
type limitRun struct {
	ctx  context.Context
	done func() error
}

// acquire takes a run for the alert a of m: a concurrency slot of its key
// (the group's with a store), then a rate slot. It returns the run, or how
// long the alert must wait before it asks again.
func (l *limiter) acquire(ctx context.Context, store *groupBucket, m *processor.Message, a stream.Alert) (limitRun, time.Duration, error) {
	var held *lease
	if l.conc != nil {
		var err error
		if held, err = l.conc.acquire(ctx, store, m, a); err != nil {
			return limitRun{}, 0, err
		}
		if held == nil {
			return limitRun{}, l.concurrencyWait(), nil
		}
	}
	if l.interval > 0 {
		if wait := l.reserve(holderOf(m)); wait > 0 {
			if held != nil {
				// Waiting is the outcome whatever this says: a slot that
				// cannot be freed frees itself within its lease.
				_ = held.release(ctx)
			}
			return limitRun{}, wait, nil
		}
	}
	start := l.now()
	run := limitRun{ctx: ctx, done: func() error {
		l.finished(l.now().Sub(start))
		return nil
	}}
	if held != nil {
		run.ctx = held.hold(ctx)
		run.done = func() error {
			l.finished(l.now().Sub(start))
			return held.release(ctx)
		}
	}
	return run, 0, nil
}

// reserve returns 0 if holder may run now (its reserved slot has come, or
// a slot is free), or how long until the slot it reserves.
func (l *limiter) reserve(holder string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if slot, ok := l.reserved[holder]; ok {
		switch {
		case slot.After(now):
			return slot.Sub(now) // came back early (a restart of the consumer)
		case now.Sub(slot) <= l.interval:
			delete(l.reserved, holder)
			return 0
		}
		// Came back later than its slot's turn: running now would bunch
		// it with the next slot's run. Reserve again.
		delete(l.reserved, holder)
	}
	slot := l.tat.Add(-time.Duration(l.burst-1) * l.interval)
	if slot.Before(now) {
		slot = now
	}
	l.tat = later(l.tat, slot).Add(l.interval)
	if !slot.After(now) {
		return 0
	}
	if len(l.reserved) >= 10_000 {
		l.forgetStale(now)
	}
	l.reserved[holder] = slot
	return slot.Sub(now)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// forgetStale drops the reservations of alerts that did not come back
// (another process of the group took them).
func (l *limiter) forgetStale(now time.Time) {
	for h, slot := range l.reserved {
		if now.Sub(slot) > l.interval {
			delete(l.reserved, h)
		}
	}
}

func (l *limiter) finished(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.avgRun == 0 {
		l.avgRun = d
		return
	}
	l.avgRun += (d - l.avgRun) / 8
}

// concurrencyWait is the expected time until a run ends: the average run
// shared among the slots.
func (l *limiter) concurrencyWait() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.avgRun == 0 {
		return limitWaitFirst
	}
	return min(max(l.avgRun/time.Duration(l.conc.slots), limitWaitMin), limitWaitMax)
}
