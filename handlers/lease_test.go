package handlers

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// leaseSetup is one group's lease bucket on a real server, and a
// concurrency limit of one run per host: what two processes of the group
// share.
type leaseSetup struct {
	conn  *stream.Conn
	store func() *groupBucket // a fresh handle, as another process has
	c     func() *concurrency // the entry's limit, as another process has
}

func newLeaseSetup(t *testing.T, slots int, lease time.Duration) leaseSetup {
	t.Helper()
	conn := streamtest.NewServer(t)
	return leaseSetup{
		conn:  conn,
		store: func() *groupBucket { return newLeaseStore(processor.Group{Name: "g1", JetStream: conn.JS}) },
		c: func() *concurrency {
			c, err := newConcurrency(slots, "{{.Labels.host}}", lease)
			if err != nil {
				t.Fatal(err)
			}
			c.entry = "restart"
			return c
		},
	}
}

func hostAlert(host string) stream.Alert {
	return stream.Alert{Subject: "alerts.x", Name: "x", Labels: map[string]string{"host": host}}
}

func seqMessage(seq uint64) *processor.Message {
	return processor.NewMessage("alerts.x", []byte("x"), nil, processor.MessageInfo{Stream: "ALERTS", Sequence: seq})
}

// TestLeasesAcrossProcesses: two processes of a group share each host's
// slot; other hosts do not wait; a freed slot is taken at once.
func TestLeasesAcrossProcesses(t *testing.T) {
	t.Parallel()
	s := newLeaseSetup(t, 1, 5*time.Second)
	ctx := context.Background()
	p1, p2 := s.c(), s.c()
	st1, st2 := s.store(), s.store()

	a1, err := p1.acquire(ctx, st1, seqMessage(1), hostAlert("a"))
	if err != nil || a1 == nil {
		t.Fatalf("first run on host a: %v, %v", a1, err)
	}
	a1.hold(ctx)
	if l, err := p2.acquire(ctx, st2, seqMessage(2), hostAlert("a")); err != nil || l != nil {
		t.Fatalf("another process ran host a at the same time: %v, %v", l, err)
	}
	b1, err := p2.acquire(ctx, st2, seqMessage(3), hostAlert("b"))
	if err != nil || b1 == nil {
		t.Fatalf("host b waits for host a: %v, %v", b1, err)
	}
	b1.hold(ctx)

	ex, err := p2.peek(ctx, st2, hostAlert("a"))
	if err != nil || !ex.Known || len(ex.Taken) != 1 || ex.Taken[0].Alert != "ALERTS:1" || ex.Taken[0].PID == 0 || ex.Key != "a" {
		t.Errorf("peek host a: %+v, %v", ex, err)
	}
	if err := a1.release(ctx); err != nil {
		t.Fatal(err)
	}
	a2, err := p2.acquire(ctx, st2, seqMessage(2), hostAlert("a"))
	if err != nil || a2 == nil {
		t.Fatalf("host a's slot freed, yet: %v, %v", a2, err)
	}
	for _, l := range []*lease{a2, b1} {
		if err := l.release(ctx); err != nil {
			t.Error(err)
		}
	}
	if ex, err := p1.peek(ctx, st1, hostAlert("a")); err != nil || len(ex.Taken) != 0 {
		t.Errorf("after every run: %+v, %v", ex, err)
	}
}

// TestLeaseSlots: concurrent 2 lets two runs of a key at once across the
// group, not three.
func TestLeaseSlots(t *testing.T) {
	t.Parallel()
	s := newLeaseSetup(t, 2, 5*time.Second)
	ctx := context.Background()
	var held []*lease
	for i := range 3 {
		l, err := s.c().acquire(ctx, s.store(), seqMessage(uint64(i+1)), hostAlert("a"))
		if err != nil {
			t.Fatal(err)
		}
		if (l != nil) != (i < 2) {
			t.Fatalf("run %d: slot %v", i+1, l)
		}
		if l != nil {
			held = append(held, l)
		}
	}
	for _, l := range held {
		if err := l.release(ctx); err != nil {
			t.Error(err)
		}
	}
}

// TestLeaseOfDeadProcessExpires: a slot nobody renews (its process was
// killed) frees itself within the lease; one renewed stays taken.
func TestLeaseOfDeadProcessExpires(t *testing.T) {
	t.Parallel()
	const leaseTTL = 2 * time.Second
	s := newLeaseSetup(t, 1, leaseTTL)
	ctx := context.Background()
	// The dead process took host a's slot and never renewed it.
	dead, err := s.c().acquire(ctx, s.store(), seqMessage(1), hostAlert("a"))
	if err != nil || dead == nil {
		t.Fatal(err)
	}
	// The live one took host b's and renews it.
	live, err := s.c().acquire(ctx, s.store(), seqMessage(2), hostAlert("b"))
	if err != nil || live == nil {
		t.Fatal(err)
	}
	runCtx := live.hold(ctx)
	taken := time.Now()
	other, st := s.c(), s.store()
	streamtest.Eventually(t, leaseTTL+5*time.Second, func() bool {
		l, err := other.acquire(ctx, st, seqMessage(3), hostAlert("a"))
		if err != nil {
			t.Fatal(err)
		}
		if l != nil {
			_ = l.release(ctx)
		}
		return l != nil
	}, "host a's slot freed by its lease")
	if d := time.Since(taken); d < leaseTTL-time.Second {
		t.Errorf("host a's slot freed after %s, before its lease of %s", d, leaseTTL)
	}
	// Host b's slot has outlived its lease several times over, renewed.
	kv, err := s.conn.JS.KeyValue(ctx, LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	revs := map[uint64]bool{}
	streamtest.Eventually(t, 4*leaseTTL, func() bool {
		e, err := kv.Get(ctx, live.kvKey)
		if err != nil {
			t.Fatalf("host b's renewed slot: %v", err)
		}
		revs[e.Revision()] = true
		return len(revs) >= 4
	}, "host b's slot renewed three times")
	if l, err := other.acquire(ctx, st, seqMessage(4), hostAlert("b")); err != nil || l != nil {
		t.Errorf("host b's renewed slot taken by another run: %v, %v", l, err)
	}
	if runCtx.Err() != nil {
		t.Errorf("the run was cancelled: %v", context.Cause(runCtx))
	}
	if err := live.release(ctx); err != nil {
		t.Error(err)
	}
}

// TestLeaseLostCancelsRun: a run whose slot was taken from it (it expired
// while JetStream was out of reach, and another run wrote it) is cancelled
// with the reason.
func TestLeaseLostCancelsRun(t *testing.T) {
	t.Parallel()
	s := newLeaseSetup(t, 1, 3*time.Second)
	ctx := context.Background()
	l, err := s.c().acquire(ctx, s.store(), seqMessage(1), hostAlert("a"))
	if err != nil || l == nil {
		t.Fatal(err)
	}
	runCtx := l.hold(ctx)
	kv, err := s.conn.JS.KeyValue(ctx, LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, l.kvKey, []byte(`{"alert":"ALERTS:9"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-runCtx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the run goes on without its slot")
	}
	var lost *errLeaseLost
	if cause := context.Cause(runCtx); !errors.As(cause, &lost) {
		t.Errorf("cause %v, want the lost slot", cause)
	}
	if err := l.release(ctx); err != nil {
		t.Errorf("release of a lost slot: %v", err)
	}
	if e, err := kv.Get(ctx, l.kvKey); err != nil || string(e.Value()) != `{"alert":"ALERTS:9"}` {
		t.Errorf("release deleted the other run's slot: %v", err)
	}
}

// TestExplainConcurrency: explain shows the key and who holds its slots.
func TestExplainConcurrency(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	cfg := Config{Handlers: []Entry{{On: "alerts.>", Name: "restart", Print: true,
		Limit: &LimitConfig{Concurrent: 1, Per: "{{.Labels.host}}", Lease: 4 * time.Second}}}}
	rs := startedRules(t, cfg, Deps{}, conn, "g1")
	ctx := context.Background()
	ex, err := rs.Explain(ctx, hostAlert("db-3"))
	if err != nil {
		t.Fatal(err)
	}
	if ex.Concurrency == nil || ex.Concurrency.Key != "db-3" || !ex.Concurrency.Known || len(ex.Concurrency.Taken) != 0 {
		t.Errorf("concurrency %+v", ex.Concurrency)
	}
	if ex.Limit != "at most 1 at once per key {{.Labels.host}} across the group (lease 4s)" {
		t.Errorf("limit %q", ex.Limit)
	}
	// Another process of the group runs it now.
	other := startedRules(t, cfg, Deps{}, conn, "g1")
	l, err := other.rules[0].limit.conc.acquire(ctx, other.leases.Load(), seqMessage(42), hostAlert("db-3"))
	if err != nil || l == nil {
		t.Fatal(err)
	}
	defer l.release(ctx)
	ex, err = rs.Explain(ctx, hostAlert("db-3"))
	if err != nil || len(ex.Concurrency.Taken) != 1 || ex.Concurrency.Taken[0].Alert != "ALERTS:42" {
		t.Errorf("concurrency %+v, %v", ex.Concurrency, err)
	}
	// Unstarted rules know the key, not the slots.
	cold, err := NewRules(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if ex, err := cold.Explain(ctx, hostAlert("db-3")); err != nil || ex.Concurrency.Known || ex.Concurrency.Key != "db-3" {
		t.Errorf("unstarted: %+v, %v", ex.Concurrency, err)
	}
}

// TestRulesLimitedAcrossGroup: an alert over the group's limit is deferred,
// never failed; its slot is the group's.
func TestRulesLimitedAcrossGroup(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	cfg := Config{Handlers: []Entry{{On: "alerts.>", Name: "restart", Print: true,
		Limit: &LimitConfig{Concurrent: 1, Per: "{{.Labels.host}}"}}}}
	out := &lines{}
	rs := startedRules(t, cfg, Deps{Out: out}, conn, "g1")
	other := startedRules(t, cfg, Deps{}, conn, "g1")
	ctx := context.Background()
	l, err := other.rules[0].limit.conc.acquire(ctx, other.leases.Load(), seqMessage(1), hostAlert("a"))
	if err != nil || l == nil {
		t.Fatal(err)
	}
	err = rs.Process(ctx, processor.NewMessage("alerts.x", []byte(`{"labels":{"host":"a"}}`), nil, processor.MessageInfo{Stream: "ALERTS", Sequence: 2}))
	var deferred *processor.DeferError
	if !errors.As(err, &deferred) || out.count() != 0 {
		t.Fatalf("host a busy in another process: %v, %d printed; want a deferral", err, out.count())
	}
	if err := rs.Process(ctx, processor.NewMessage("alerts.x", []byte(`{"labels":{"host":"b"}}`), nil, processor.MessageInfo{Stream: "ALERTS", Sequence: 3})); err != nil || out.count() != 1 {
		t.Fatalf("host b: %v, %d printed", err, out.count())
	}
	if err := l.release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rs.Process(ctx, processor.NewMessage("alerts.x", []byte(`{"labels":{"host":"a"}}`), nil, processor.MessageInfo{Stream: "ALERTS", Sequence: 2, Delivered: 2})); err != nil || out.count() != 2 {
		t.Fatalf("host a free: %v, %d printed", err, out.count())
	}
	if got := rs.Counts().Snapshot(); got[0].Limited != 1 {
		t.Errorf("counts %+v, want one limited", got)
	}
	// Every slot is free again, in JetStream too.
	kv, err := conn.JS.KeyValue(ctx, LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"a", "b"} {
		key := rs.rules[0].limit.conc.prefix("g1", host) + "." + strconv.Itoa(0)
		if _, err := kv.Get(ctx, key); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("host %s's slot after its run: %v, want it gone", host, err)
		}
	}
}

// BenchmarkSlotTakeFree is what a concurrency slot costs a run: taken and
// freed in this process alone (local), or in JetStream (group), a create
// and a purge on an embedded server.
func BenchmarkSlotTakeFree(b *testing.B) {
	conn := streamtest.NewServer(b)
	for _, bc := range []struct {
		name  string
		store *groupBucket
	}{
		{"local", nil},
		{"group", newLeaseStore(processor.Group{Name: "g1", JetStream: conn.JS})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := newConcurrency(1, "{{.Labels.host}}", LeaseDefault)
			if err != nil {
				b.Fatal(err)
			}
			c.entry = "restart"
			ctx := context.Background()
			a := hostAlert("db-3")
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				l, err := c.acquire(ctx, bc.store, seqMessage(uint64(i+1)), a)
				if err != nil || l == nil {
					b.Fatalf("slot %d: %v, %v", i, l, err)
				}
				if err := l.release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
