package handlers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// runRig runs a processor with the rules of cfg on a fresh server and
// collects the outcomes and what OnRun saw.
type runRig struct {
	t    *testing.T
	conn *stream.Conn
	topo stream.Topology

	mu       sync.Mutex
	outcomes []processor.Result
	seen     []handlers.Run
}

func startRunRig(t *testing.T, cfg handlers.Config) *runRig {
	t.Helper()
	conn, topo := streamtest.NewTopology(t)
	rig := &runRig{t: t, conn: conn, topo: topo}
	rules, err := handlers.NewRules(cfg, handlers.Deps{Out: io.Discard, OnRun: func(r handlers.Run) {
		rig.mu.Lock()
		rig.seen = append(rig.seen, r)
		rig.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := processor.New(conn.JS, rules, processor.Config{
		Topology: topo, Group: "ops", Workers: 1, MaxDeliver: 5, // one worker: records in alert order
		BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
		OnOutcome: func(r processor.Result) {
			rig.mu.Lock()
			rig.outcomes = append(rig.outcomes, r)
			rig.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return rig
}

// settled waits until n alerts have reached an outcome other than a retry.
func (rig *runRig) settled(n int) {
	rig.t.Helper()
	streamtest.Eventually(rig.t, 20*time.Second, func() error {
		rig.mu.Lock()
		defer rig.mu.Unlock()
		got := 0
		for _, r := range rig.outcomes {
			if r.Outcome != processor.OutcomeRetry {
				got++
			}
		}
		if got < n {
			return fmt.Errorf("%d of %d alerts settled", got, n)
		}
		return nil
	})
}

func (rig *runRig) runs(seq uint64) []handlers.Run {
	rig.t.Helper()
	runs, err := handlers.AlertRuns(context.Background(), rig.conn.JS, "ops", seq)
	if err != nil {
		rig.t.Fatal(err)
	}
	return runs
}

// TestRunRecordsOfExec: what a command printed is in its record, and a run
// that fails twice then succeeds leaves three records.
func TestRunRecordsOfExec(t *testing.T) {
	t.Parallel()
	count := filepath.Join(t.TempDir(), "count")
	rig := startRunRig(t, handlers.Config{Handlers: []handlers.Entry{
		{On: "alerts.print", Name: "printer", Exec: &handlers.ExecConfig{Command: []string{"sh", "-c", `echo "to stdout $REACTOR_ALERT_NAME"; echo "to stderr" >&2`}}},
		{On: "alerts.flaky", Name: "flaky", Exec: &handlers.ExecConfig{Command: []string{"sh", "-c",
			`n=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1"; echo "attempt $n"; [ $n -ge 3 ] || { echo "not yet" >&2; exit 1; }`, "sh", count}}},
		{On: "alerts.>", Print: true},
	}})
	streamtest.Publish(t, rig.conn, "alerts.print", "p-1", []byte(`{"summary":"s"}`))
	streamtest.Publish(t, rig.conn, "alerts.flaky", "f-1", []byte(`{"summary":"s"}`))
	streamtest.Publish(t, rig.conn, "alerts.other", "o-1", []byte(`{"summary":"only printed"}`))
	rig.settled(3)

	runs := rig.runs(1)
	if len(runs) != 1 {
		t.Fatalf("alert 1 has %d runs, want 1: %+v", len(runs), runs)
	}
	r := runs[0]
	if r.Outcome != handlers.RunOK || r.Group != "ops" || r.Entry != "printer" || r.Action != "exec" || r.ActionIndex != 0 ||
		r.AlertSeq != 1 || r.AlertID != "p-1" || r.Subject != "alerts.print" || r.Delivered != 1 || r.ExitCode == nil || *r.ExitCode != 0 ||
		r.PID == 0 || r.Host == "" || r.ID == "" || r.Started.IsZero() || r.DurationSeconds <= 0 || len(r.Command) != 3 {
		t.Errorf("record %+v", r)
	}
	if r.Stdout == nil || r.Stdout.Text != "to stdout print\n" || r.Stderr == nil || r.Stderr.Text != "to stderr\n" || r.Stdout.Truncated {
		t.Errorf("outputs %+v %+v, want both", r.Stdout, r.Stderr)
	}

	runs = rig.runs(2)
	if len(runs) != 3 {
		t.Fatalf("alert 2 has %d runs, want 3: %+v", len(runs), runs)
	}
	for i, want := range []string{handlers.RunFailed, handlers.RunFailed, handlers.RunOK} {
		r := runs[i]
		if r.Outcome != want || r.Delivered != i+1 || r.Stdout == nil || r.Stdout.Text != fmt.Sprintf("attempt %d\n", i+1) {
			t.Errorf("run %d: outcome %s, delivered %d, stdout %+v; want %s, %d", i, r.Outcome, r.Delivered, r.Stdout, want, i+1)
		}
		if want == handlers.RunFailed && (r.ExitCode == nil || *r.ExitCode != 1 || !strings.Contains(r.Error, `stderr: "not yet"`)) {
			t.Errorf("run %d: exit code %v, error %q", i, r.ExitCode, r.Error)
		}
	}
	if runs := rig.runs(3); len(runs) != 0 {
		t.Errorf("a print-only alert has runs: %+v", runs)
	}
	got, err := handlers.GetRun(context.Background(), rig.conn.JS, runs[1].ID)
	if err != nil || got.ID != runs[1].ID || got.Outcome != handlers.RunFailed {
		t.Errorf("GetRun = %+v, %v", got, err)
	}
	rig.mu.Lock()
	defer rig.mu.Unlock()
	if len(rig.seen) != 4 {
		t.Errorf("OnRun saw %d runs, want 4", len(rig.seen))
	}
}

// TestRunRecordOfWebhookAndSuppressed: a webhook's record has the status,
// the answer and the URL without its secrets; a repeat the entry suppresses
// has a record saying so.
func TestRunRecordOfWebhookAndSuppressed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"ok":true,"echo":"s3cret-token"}`)
	}))
	t.Cleanup(srv.Close)
	rig := startRunRig(t, handlers.Config{Handlers: []handlers.Entry{{
		On: "alerts.>", Name: "hook", Suppress: &handlers.SuppressConfig{For: time.Minute},
		Webhook: &handlers.WebhookConfig{URL: srv.URL + "/hook?key=s3cret-key", Headers: map[string]string{"Authorization": "Bearer s3cret-token"}},
	}}})
	streamtest.Publish(t, rig.conn, "alerts.x", "w-1", []byte(`{"summary":"s"}`))
	rig.settled(1)
	streamtest.Publish(t, rig.conn, "alerts.x", "w-2", []byte(`{"summary":"s"}`))
	rig.settled(2)

	runs := rig.runs(1)
	if len(runs) != 1 {
		t.Fatalf("%d runs: %+v", len(runs), runs)
	}
	r := runs[0]
	if r.Outcome != handlers.RunOK || r.Action != "webhook" || r.HTTPStatus != http.StatusAccepted || r.Body == nil ||
		r.Body.Text != `{"ok":true,"echo":"REDACTED"}` || strings.Contains(r.URL, "s3cret") || !strings.Contains(r.URL, "/hook?key=REDACTED") {
		t.Errorf("record %+v body %+v", r, r.Body)
	}
	runs = rig.runs(2)
	if len(runs) != 1 || runs[0].Outcome != handlers.RunSuppressed || runs[0].Action != "" || !strings.Contains(runs[0].Error, "opened by alert ALERTS:1") {
		t.Errorf("repeat's records %+v, want one suppressed", runs)
	}
}

// TestRunOutputCut: a command that prints 1 MiB leaves the end of it in its
// record, which says it was cut, and its alert is acknowledged.
func TestRunOutputCut(t *testing.T) {
	t.Parallel()
	rig := startRunRig(t, handlers.Config{
		Runs: handlers.RunsConfig{Output: 1000},
		Handlers: []handlers.Entry{{On: "alerts.>", Exec: &handlers.ExecConfig{Command: []string{"sh", "-c",
			`head -c 1048576 /dev/zero | tr '\0' x; echo; echo the end`}}}},
	})
	streamtest.Publish(t, rig.conn, "alerts.big", "b-1", []byte(`{"summary":"s"}`))
	rig.settled(1)
	rig.mu.Lock()
	outcome := rig.outcomes[0].Outcome
	rig.mu.Unlock()
	if outcome != processor.OutcomeAck {
		t.Errorf("outcome %s, want ok", outcome)
	}
	runs := rig.runs(1)
	if len(runs) != 1 || runs[0].Stdout == nil {
		t.Fatalf("runs %+v", runs)
	}
	out := runs[0].Stdout
	if !out.Truncated || out.Bytes != int64(1<<20+len("\nthe end\n")) || len(out.Text) != 1000 || !strings.HasSuffix(out.Text, "x\nthe end\n") {
		t.Errorf("stdout: truncated %v, %d bytes, %d kept, ends %q", out.Truncated, out.Bytes, len(out.Text), out.Text[max(0, len(out.Text)-20):])
	}
}

// TestRunsRetentionBySize: past its max bytes, the records stream drops the
// oldest records and keeps the newest.
func TestRunsRetentionBySize(t *testing.T) {
	t.Parallel()
	rig := startRunRig(t, handlers.Config{
		Runs:     handlers.RunsConfig{MaxBytes: 16 << 10},
		Handlers: []handlers.Entry{{On: "alerts.>", Exec: &handlers.ExecConfig{Command: []string{"true"}}}},
	})
	const n = 60
	for i := range n {
		streamtest.Publish(t, rig.conn, "alerts.x", fmt.Sprintf("r-%d", i), []byte(`{"summary":"s"}`))
	}
	rig.settled(n)
	page, err := handlers.ListRuns(context.Background(), rig.conn.JS, handlers.RunQuery{Limit: n})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) == 0 || len(page.Runs) >= n {
		t.Fatalf("%d records kept of %d, want the newest only", len(page.Runs), n)
	}
	newest := page.Runs[0].AlertSeq
	if newest != n {
		t.Errorf("newest record is of alert %d, want %d", newest, n)
	}
	s, err := rig.conn.JS.Stream(context.Background(), handlers.RunsStream)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.CachedInfo().State; st.FirstSeq == 1 || st.Bytes > 16<<10 {
		t.Errorf("records stream state %+v: want the oldest dropped, at most 16 KiB", st)
	}
}

// TestListRuns: newest first, filtered by the server (group, alert) or here
// (entry, failed), and paged.
func TestListRuns(t *testing.T) {
	t.Parallel()
	rig := startRunRig(t, handlers.Config{Handlers: []handlers.Entry{
		{On: "alerts.ok", Name: "fine", Exec: &handlers.ExecConfig{Command: []string{"true"}}},
		{On: "alerts.bad", Name: "broken", Exec: &handlers.ExecConfig{Command: []string{"false"}, PermanentExitCodes: []int{1}}},
	}})
	for i := range 6 {
		subject := "alerts.ok"
		if i%3 == 2 {
			subject = "alerts.bad"
		}
		streamtest.Publish(t, rig.conn, subject, fmt.Sprintf("l-%d", i), []byte(`{"summary":"s"}`))
	}
	rig.settled(6)
	ctx := context.Background()
	list := func(q handlers.RunQuery) []string {
		t.Helper()
		page, err := handlers.ListRuns(ctx, rig.conn.JS, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range page.Runs {
			out = append(out, fmt.Sprintf("%d:%s", r.AlertSeq, r.Outcome))
		}
		return out
	}
	tests := []struct {
		q    handlers.RunQuery
		want string
	}{
		{handlers.RunQuery{}, "[6:permanent 5:ok 4:ok 3:permanent 2:ok 1:ok]"},
		{handlers.RunQuery{Limit: 2}, "[6:permanent 5:ok]"},
		{handlers.RunQuery{Failed: true}, "[6:permanent 3:permanent]"},
		{handlers.RunQuery{Entry: "fine", Limit: 3}, "[5:ok 4:ok 2:ok]"},
		{handlers.RunQuery{AlertSeq: 4}, "[4:ok]"},
		{handlers.RunQuery{AlertID: "l-1"}, "[2:ok]"},
		{handlers.RunQuery{Group: "other"}, "[]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(list(tt.q)); got != tt.want {
			t.Errorf("ListRuns(%+v) = %s, want %s", tt.q, got, tt.want)
		}
	}
	page, err := handlers.ListRuns(ctx, rig.conn.JS, handlers.RunQuery{Limit: 4})
	if err != nil || page.Older == 0 {
		t.Fatalf("first page %+v, %v: want an older page", page, err)
	}
	if got := fmt.Sprint(list(handlers.RunQuery{Limit: 4, Before: page.Older})); got != "[2:ok 1:ok]" {
		t.Errorf("second page %s", got)
	}
}
