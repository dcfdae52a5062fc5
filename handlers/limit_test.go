package handlers

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
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

// take asks l for a run of the alert stored as holder ("<stream>:<seq>"),
// with labels, in this process alone.
func take(t *testing.T, l *limiter, holder string, labels ...string) (done func(), wait time.Duration) {
	t.Helper()
	name, seqText, _ := strings.Cut(holder, ":")
	seq, _ := strconv.ParseUint(seqText, 10, 64)
	a := stream.Alert{Subject: "alerts.x", Labels: map[string]string{}}
	for i := 0; i+1 < len(labels); i += 2 {
		a.Labels[labels[i]] = labels[i+1]
	}
	m := processor.NewMessage(a.Subject, []byte("x"), nil, processor.MessageInfo{Stream: name, Sequence: seq})
	run, wait, err := l.acquire(context.Background(), nil, m, a)
	if err != nil {
		t.Fatal(err)
	}
	if wait > 0 {
		return nil, wait
	}
	return func() {
		if err := run.done(); err != nil {
			t.Error(err)
		}
	}, 0
}

func TestLimiterRateReservesSlots(t *testing.T) {
	t.Parallel()
	l, c := newTestLimiter(t, LimitConfig{Rate: "10/s"})
	done, wait := take(t, l, "a:1")
	if wait != 0 {
		t.Fatalf("first run waits %s", wait)
	}
	done()
	// Three more at once: each reserves the next slot, 100ms apart.
	for i, h := range []string{"a:2", "a:3", "a:4"} {
		if _, wait := take(t, l, h); wait != time.Duration(i+1)*100*time.Millisecond {
			t.Errorf("%s waits %s, want %s", h, wait, time.Duration(i+1)*100*time.Millisecond)
		}
	}
	// a:3 comes back first, at its slot: it runs; a:2, late by less than
	// the interval, runs too; a:4, early, waits on.
	c.t = c.t.Add(200 * time.Millisecond)
	if _, wait := take(t, l, "a:3"); wait != 0 {
		t.Errorf("a:3 at its slot waits %s", wait)
	}
	if _, wait := take(t, l, "a:2"); wait != 0 {
		t.Errorf("a:2 after its slot waits %s", wait)
	}
	if _, wait := take(t, l, "a:4"); wait != 100*time.Millisecond {
		t.Errorf("a:4 early waits %s, want 100ms", wait)
	}
	// Back a whole interval late, a:4 takes a new slot rather than bunch.
	c.t = c.t.Add(300 * time.Millisecond)
	if _, wait := take(t, l, "a:4"); wait != 0 {
		t.Errorf("a:4 late waits %s: the limiter is idle, it may run", wait)
	}
}

func TestLimiterBurst(t *testing.T) {
	t.Parallel()
	l, _ := newTestLimiter(t, LimitConfig{Rate: "10/m", Burst: 3})
	for i := range 3 {
		if _, wait := take(t, l, string(rune('a'+i))); wait != 0 {
			t.Fatalf("run %d of the burst waits %s", i, wait)
		}
	}
	if _, wait := take(t, l, "d"); wait != 6*time.Second {
		t.Errorf("after the burst: wait %s, want 6s", wait)
	}
}

func TestLimiterConcurrency(t *testing.T) {
	t.Parallel()
	l, c := newTestLimiter(t, LimitConfig{Concurrent: 2})
	d1, _ := take(t, l, "a:1")
	d2, _ := take(t, l, "a:2")
	if _, wait := take(t, l, "a:3"); wait != limitWaitFirst {
		t.Errorf("third while two run: wait %s, want %s before any run ended", wait, limitWaitFirst)
	}
	c.t = c.t.Add(time.Second)
	d1()
	d3, wait := take(t, l, "a:3")
	if wait != 0 {
		t.Fatalf("a slot is free, yet wait %s", wait)
	}
	c.t = c.t.Add(time.Second)
	d3()
	d4, _ := take(t, l, "a:4")
	if _, wait := take(t, l, "a:5"); wait != 500*time.Millisecond {
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

// TestLimiterConcurrencyPerKey: each key has its own slots; a key's slots
// free when its runs end.
func TestLimiterConcurrencyPerKey(t *testing.T) {
	t.Parallel()
	l, _ := newTestLimiter(t, LimitConfig{Concurrent: 1, Per: "{{.Labels.host}}"})
	a1, _ := take(t, l, "a:1", "host", "a")
	if _, wait := take(t, l, "a:2", "host", "a"); wait == 0 {
		t.Fatal("two runs at once on host a")
	}
	b1, wait := take(t, l, "a:3", "host", "b")
	if wait != 0 {
		t.Fatalf("host b waits %s for host a's run", wait)
	}
	// An alert without the label has a key of its own: the empty one.
	none, wait := take(t, l, "a:4")
	if wait != 0 {
		t.Fatalf("no host waits %s", wait)
	}
	a1()
	a2, wait := take(t, l, "a:2", "host", "a")
	if wait != 0 {
		t.Fatalf("host a's slot is free, yet wait %s", wait)
	}
	a2()
	b1()
	none()
	if n := len(l.conc.keys); n != 0 {
		t.Errorf("%d keys remembered after every run ended", n)
	}
}

func TestLimitConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cfg  LimitConfig
		want string
	}{
		{LimitConfig{Rate: "1/s", Per: "{{.Labels.host}}"}, "per and lease go with concurrent"},
		{LimitConfig{Concurrent: 1, Lease: time.Second}, "lease 1s: want whole seconds, at least 2s"},
		{LimitConfig{Concurrent: 1, Lease: 2500 * time.Millisecond}, "lease 2.5s: want whole seconds"},
		{LimitConfig{Concurrent: 1, Per: "{{.Labels.host"}, `per "{{.Labels.host": not a valid template`},
		{LimitConfig{Concurrent: 1, Per: "{{.Label.host}}"}, "fails on a sample alert"},
	} {
		if _, err := tt.cfg.parse(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
