package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

type lines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lines) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), "\n")
}

// TestSuppressWindowInJetStream walks one window through its life against a
// real server: open, repeat, redelivery of the opener, resolved, expiry,
// and a failed action.
func TestSuppressWindowInJetStream(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	out := &lines{}
	cfg := Config{Handlers: []Entry{
		{On: "alerts.fail", Name: "fail", Suppress: &SuppressConfig{For: time.Minute}, Exec: &ExecConfig{Command: []string{"sh", "-c", "exit 1"}}},
		{On: "alerts.>", Name: "page", Suppress: &SuppressConfig{Key: "{{.Labels.instance}}", For: time.Second},
			When: When{Status: stream.StatusFiring}, Print: true},
		{On: "alerts.>", Name: "resolved", When: When{Status: stream.StatusResolved}},
	}}
	rs := startedRules(t, cfg, Deps{Out: out}, conn, "g1")
	ctx := context.Background()
	seq := uint64(0)
	send := func(subject, payload string) error {
		seq++
		return rs.Process(ctx, processor.NewMessage(subject, []byte(payload), nil, processor.MessageInfo{Stream: "ALERTS", Sequence: seq}))
	}
	expect := func(step string, err, wantErr error, wantLines int) {
		t.Helper()
		if !errors.Is(err, wantErr) && !(err == nil && wantErr == nil) {
			t.Fatalf("%s: %v, want %v", step, err, wantErr)
		}
		if got := out.count(); got != wantLines {
			t.Fatalf("%s: %d actions ran, want %d", step, got, wantLines)
		}
	}
	db3 := `{"labels":{"instance":"db-3"}}`
	expect("first", send("alerts.disk", db3), nil, 1)
	expect("repeat", send("alerts.disk", db3), processor.ErrDrop, 1)
	expect("repeat on another subject, same key", send("alerts.cpu", db3), processor.ErrDrop, 1)
	expect("another instance", send("alerts.disk", `{"labels":{"instance":"db-4"}}`), nil, 2)
	// The opener comes back (its ack was lost): it is not its own repeat.
	err := rs.Process(ctx, processor.NewMessage("alerts.disk", []byte(db3), nil, processor.MessageInfo{Stream: "ALERTS", Sequence: 1, Delivered: 2}))
	expect("redelivery of the opener", err, nil, 3)
	expect("resolved ends the window", send("alerts.disk", `{"status":"resolved","labels":{"instance":"db-3"}}`), processor.ErrDrop, 3)
	expect("firing after resolved", send("alerts.disk", db3), nil, 4)
	expect("repeat again", send("alerts.disk", db3), processor.ErrDrop, 4)
	streamtest.Eventually(t, 10*time.Second, func() bool {
		ex, err := rs.Explain(ctx, stream.Alert{Subject: "alerts.disk", Severity: stream.SeverityWarning, Labels: map[string]string{"instance": "db-3"}})
		return err == nil && ex.Suppress != nil && !ex.Suppress.Open
	}, "window expired")
	expect("after the window", send("alerts.disk", db3), nil, 5)

	// A failed action has not acted: the next alert with the key runs too.
	for i := range 2 {
		if err := send("alerts.fail", "x"); err == nil || errors.Is(err, processor.ErrDrop) {
			t.Fatalf("failing action %d: %v, want its error", i, err)
		}
	}
	want := []EntryCount{{Entry: "fail"}, {Entry: "page", Suppressed: 3}, {Entry: "resolved", Filtered: 1}}
	if got := rs.Counts().Snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts %+v, want %+v", got, want)
	}
}

// TestCountsStream: what each process counted adds up in JetStream.
func TestCountsStream(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	cfg := Config{Handlers: []Entry{{On: "alerts.>", Name: "drop all"}}}
	for _, group := range []string{"g1", "g1", "g2"} {
		rs, err := NewRules(cfg, Deps{})
		if err != nil {
			t.Fatal(err)
		}
		stop, err := rs.Start(context.Background(), processor.Group{Name: group, JetStream: conn.JS})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			_ = rs.Process(context.Background(), processor.NewMessage("alerts.x", []byte("x"), nil, processor.MessageInfo{Sequence: uint64(i + 1)}))
		}
		stop() // flushes once on the way out
	}
	got, err := ReadCounts(context.Background(), conn.JS)
	if err != nil {
		t.Fatal(err)
	}
	want := []EntryCount{{Group: "g1", Entry: "drop all", Filtered: 6}, {Group: "g2", Entry: "drop all", Filtered: 3}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts %+v, want %+v", got, want)
	}
}

// startedRules compiles cfg and starts the rules in group on conn, as a
// processor does; they stop with the test.
func startedRules(t *testing.T, cfg Config, deps Deps, conn *stream.Conn, group string) *Rules {
	t.Helper()
	rs, err := NewRules(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := rs.Start(context.Background(), processor.Group{Name: group, JetStream: conn.JS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	if _, err := rs.Start(context.Background(), processor.Group{Name: group, JetStream: conn.JS}); err == nil {
		t.Error("a second Start succeeded: a Rules serves one group")
	}
	return rs
}
