package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/processor/processortest"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/embedded"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestOnNames(t *testing.T) {
	t.Parallel()
	r := processor.NewRouter()
	var got []string
	for _, name := range []string{"terminator_detected", "alerts.disk_full", "db.>", "*.cpu"} {
		handlers.On(r, name, func(_ context.Context, a stream.Alert) error {
			got = append(got, name+" took "+a.Subject)
			return nil
		})
	}
	for _, subject := range []string{"alerts.terminator_detected", "alerts.disk_full", "alerts.db.primary.lag", "alerts.web.cpu", "alerts.other"} {
		res := processortest.Process(context.Background(), r, processortest.AlertMessage(stream.NewAlert(subject, "s"), 1), processor.Config{})
		if subject == "alerts.other" {
			if res.Reason != stream.ReasonNoHandler {
				t.Errorf("%s: %+v, want no_handler", subject, res)
			}
			continue
		}
		if res.Outcome != processor.OutcomeAck {
			t.Errorf("%s: %+v", subject, res)
		}
	}
	want := []string{
		"terminator_detected took alerts.terminator_detected", "alerts.disk_full took alerts.disk_full",
		"db.> took alerts.db.primary.lag", "*.cpu took alerts.web.cpu",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls %q, want %q", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("On with a taken name did not panic")
		}
	}()
	handlers.On(r, "alerts.terminator_detected", func(context.Context, stream.Alert) error { return nil })
}

// TestAlertFuncGetsTheAlertAndItsMessage: the typed handler sees the decoded
// alert and, through MessageOf, its delivery; a bad payload never reaches it.
func TestAlertFuncGetsTheAlertAndItsMessage(t *testing.T) {
	t.Parallel()
	var seen stream.Alert
	var delivered int
	h := handlers.AlertFunc(func(ctx context.Context, a stream.Alert) error {
		seen, delivered = a, handlers.MessageOf(ctx).Delivered()
		return nil
	})
	a := stream.NewAlert("disk_full", "disk 95% on db-3")
	a.Labels = map[string]string{"host": "db-3"}
	if res := processortest.Process(context.Background(), h, processortest.AlertMessage(a, 2), processor.Config{}); res.Err != nil {
		t.Fatal(res.Err)
	}
	streamtest.AssertAlert(t, seen, a)
	if delivered != 2 {
		t.Errorf("MessageOf(ctx).Delivered() = %d, want 2", delivered)
	}
	if handlers.MessageOf(context.Background()) != nil {
		t.Error("MessageOf outside a handler is not nil")
	}
	called := false
	bad := handlers.AlertFunc(func(context.Context, stream.Alert) error { called = true; return nil })
	res := processortest.Process(context.Background(), bad, processor.NewMessage("alerts.x", []byte(`{"nope":1}`), nil, processor.MessageInfo{}), processor.Config{})
	if called || res.Reason != stream.ReasonPermanent || !errors.Is(res.Err, stream.ErrInvalidAlert) {
		t.Errorf("bad payload: called %v, %+v; want a permanent ErrInvalidAlert without a call", called, res)
	}
}

// TestEntryNamesTheOutcome: an alert that the entries of two patterns could
// take is named, in the outcome, the log line and the dead letter, by the
// entry whose conditions hold, not by the most specific pattern.
func TestEntryNamesTheOutcome(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	rules, err := handlers.NewRules(handlers.Config{Handlers: []handlers.Entry{
		{On: "alerts.disk.>", Name: "disk-critical", When: handlers.When{Severity: []string{"critical"}}, Print: true},
		{On: "alerts.>", Name: "everything-else", Exec: &handlers.ExecConfig{Command: []string{"false"}, PermanentExitCodes: []int{1}}},
	}}, handlers.Deps{Out: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var results []processor.Result
	var logs lockedBuffer
	p, err := processor.New(conn.JS, rules, processor.Config{
		Topology: topo,
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		OnOutcome: func(r processor.Result) {
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	streamtest.Publish(t, conn, "alerts.disk.sda", "warning-1", []byte(`{"severity":"warning","summary":"disk 80%"}`))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	streamtest.Eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(results) == 1
	}, "the alert settled")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := results[0]; r.Entry != "everything-else" || r.Outcome != processor.OutcomeDeadLetter {
		t.Errorf("result: entry %q, outcome %s; want everything-else, dead_lettered", r.Entry, r.Outcome)
	}
	if !strings.Contains(logs.String(), "entry=everything-else") {
		t.Errorf("log lacks entry=everything-else:\n%s", logs.String())
	}
	dl, _, err := stream.NewDLQ(conn.JS, topo).List(context.Background(), "", 10)
	if err != nil || len(dl) != 1 || dl[0].Entry != "everything-else" {
		t.Errorf("dead letters %+v (%v), want one of entry everything-else", dl, err)
	}
}

// ExampleOn is the seed's @On('terminator_detected'), on an embedded server.
func ExampleOn() {
	dir, _ := os.MkdirTemp("", "reactor-example")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := embedded.Open(ctx, embedded.Config{DataDir: dir, DontListen: true}, stream.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	done := make(chan struct{})
	r := processor.NewRouter()
	handlers.On(r, "terminator_detected", func(_ context.Context, a stream.Alert) error {
		fmt.Printf("alerting Sarah Connor: %s (%s, host %s)\n", a.Summary, a.Severity, a.Labels["host"])
		close(done)
		return nil // acknowledged; an error would retry, then dead-letter
	})
	p, err := processor.New(conn.JS, r, processor.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	stopped := make(chan error)
	go func() { stopped <- p.Run(ctx) }()

	// The publisher fires and forgets: once stored, the alert is handled
	// whatever crashes meanwhile.
	a := stream.NewAlert("terminator_detected", "bad robot detected")
	a.Severity, a.Labels = stream.SeverityCritical, map[string]string{"host": "skynet-1"}
	msg, _ := a.Msg(conn.NC.MaxPayload())
	if err := stream.EnsureStreams(ctx, conn.JS, stream.Topology{}); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := stream.NewPublisher(conn.JS, stream.PublisherConfig{}).Publish(ctx, msg); err != nil {
		fmt.Println(err)
		return
	}
	<-done
	cancel()
	fmt.Println("stopped:", <-stopped)
	// Output:
	// alerting Sarah Connor: bad robot detected (critical, host skynet-1)
	// stopped: <nil>
}
