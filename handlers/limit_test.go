package handlers

import (
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand: the limiter's arithmetic,
// tested without waiting.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestLimiter(t *testing.T, cfg LimitConfig) (*limiter, *fakeClock) {
	t.Helper()
	l, err := cfg.parse()
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l.now = c.now
	return l, c
}

func TestLimiterRateReservesSlots(t *testing.T) {
	t.Parallel()
	l, c := newTestLimiter(t, LimitConfig{Rate: "10/s"})
	done, wait := l.acquire("a:1")
	if wait != 0 {
		t.Fatalf("first run waits %s", wait)
	}
	done()
	// Three more at once: each reserves the next slot, 100ms apart.
	for i, h := range []string{"a:2", "a:3", "a:4"} {
		if _, wait := l.acquire(h); wait != time.Duration(i+1)*100*time.Millisecond {
			t.Errorf("%s waits %s, want %s", h, wait, time.Duration(i+1)*100*time.Millisecond)
		}
	}
	// a:3 comes back first, at its slot: it runs; a:2, late by less than
	// the interval, runs too; a:4, early, waits on.
	c.t = c.t.Add(200 * time.Millisecond)
	if _, wait := l.acquire("a:3"); wait != 0 {
		t.Errorf("a:3 at its slot waits %s", wait)
	}
	if _, wait := l.acquire("a:2"); wait != 0 {
		t.Errorf("a:2 after its slot waits %s", wait)
	}
	if _, wait := l.acquire("a:4"); wait != 100*time.Millisecond {
		t.Errorf("a:4 early waits %s, want 100ms", wait)
	}
	// Back a whole interval late, a:4 takes a new slot rather than bunch.
	c.t = c.t.Add(300 * time.Millisecond)
	if _, wait := l.acquire("a:4"); wait != 0 {
		t.Errorf("a:4 late waits %s: the limiter is idle, it may run", wait)
	}
}

func TestLimiterBurst(t *testing.T) {
	t.Parallel()
	l, _ := newTestLimiter(t, LimitConfig{Rate: "10/m", Burst: 3})
	for i := range 3 {
		if _, wait := l.acquire(string(rune('a' + i))); wait != 0 {
			t.Fatalf("run %d of the burst waits %s", i, wait)
		}
	}
	if _, wait := l.acquire("d"); wait != 6*time.Second {
		t.Errorf("after the burst: wait %s, want 6s", wait)
	}
}

func TestLimiterConcurrency(t *testing.T) {
	t.Parallel()
	l, c := newTestLimiter(t, LimitConfig{Concurrent: 2})
	d1, _ := l.acquire("a:1")
	d2, _ := l.acquire("a:2")
	if _, wait := l.acquire("a:3"); wait != limitWaitFirst {
		t.Errorf("third while two run: wait %s, want %s before any run ended", wait, limitWaitFirst)
	}
	c.t = c.t.Add(time.Second)
	d1()
	d3, wait := l.acquire("a:3")
	if wait != 0 {
		t.Fatalf("a slot is free, yet wait %s", wait)
	}
	c.t = c.t.Add(time.Second)
	d3()
	d4, _ := l.acquire("a:4")
	if _, wait := l.acquire("a:5"); wait != 500*time.Millisecond {
		t.Errorf("wait %s, want the average run (1s) over the two slots", wait)
	}
	d2()
	d4()
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"10/s": 100 * time.Millisecond, "10/m": 6 * time.Second, "2/h": 30 * time.Minute, "5/30s": 6 * time.Second} {
		n, per, err := parseRate(in)
		if err != nil || per/time.Duration(n) != want {
			t.Errorf("parseRate(%q) = %d/%s, %v; want an interval of %s", in, n, per, err, want)
		}
	}
	for _, in := range []string{"", "10", "0/s", "-1/s", "x/s", "10/", "10/d", "10/-1s"} {
		if _, _, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q): no error", in)
		}
	}
}
