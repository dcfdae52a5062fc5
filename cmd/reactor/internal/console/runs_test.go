package console_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/reactor-alerts/reactor/cmd/reactor/internal/console"
	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// startRules runs group "pager" with rules until the test ends.
func (b *bundle) startRules(rules *handlers.Rules) {
	b.t.Helper()
	p, err := processor.New(b.conn.JS, rules, processor.Config{Topology: b.topo, Group: "pager", Workers: 2, MaxDeliver: 2,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond, ShutdownTimeout: 5 * time.Second})
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	b.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.t.Errorf("processor: %v", err)
		}
	})
	streamtest.Eventually(b.t, 10*time.Second, p.Ready, "processor ready")
}

// TestRunsInTheBrowser: an alert's page lists its runs with their output,
// escaped; the Runs page lists them with filters; a run's page has it all;
// Re-run, clicked, runs the group's rules again; the dead letter's page
// shows the runs that failed before it.
func TestRunsInTheBrowser(t *testing.T) {
	var long strings.Builder
	for i := range 40 {
		fmt.Fprintf(&long, "line %d\n", i)
	}
	rules, err := handlers.NewRules(handlers.Config{Handlers: []handlers.Entry{
		{On: "alerts.page", Name: "page-oncall", Exec: &handlers.ExecConfig{Command: []string{"sh", "-c",
			`echo "<b>paged</b> $REACTOR_ALERT_NAME"; printf '` + long.String() + `' >&2`}}},
		{On: "alerts.broken", Name: "broken", Exec: &handlers.ExecConfig{Command: []string{"sh", "-c", "echo no route to host >&2; exit 7"}}},
		{On: "alerts.>", Name: "the-rest"},
	}}, handlers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	b := setupWith(t, console.Config{Rules: rules, Group: "pager"})
	b.startRules(rules)
	b.send("page", "critical", "db down", nil)
	b.send("broken", "error", "will fail", nil)
	b.send("noise", "info", "filtered", nil)
	streamtest.Eventually(t, 20*time.Second, func() bool { return b.status().DLQ.Messages == 1 }, "the broken alert dead-lettered")

	ctx := browser(t)
	// The list says what became of each alert in the group.
	do(t, ctx, chromedp.Navigate(b.srv.URL+"/alerts"))
	if got := texts(t, ctx, "#alerts td.fates"); fmt.Sprint(got) != "[filtered dead-lettered acted ok]" {
		t.Errorf("outcome column, newest first: %q", got)
	}
	screenshot(t, ctx, "alerts-outcomes")
	do(t, ctx, chromedp.Navigate(b.srv.URL+"/alerts/3"))
	if got := text(t, ctx, "#fates"); !strings.Contains(got, "filtered: dropped on purpose") {
		t.Errorf("alert 3's fate: %q", got)
	}
	do(t, ctx, chromedp.Navigate(b.srv.URL+"/alerts/1"))
	if got := text(t, ctx, "#fates"); !strings.Contains(got, "pager") || !strings.Contains(got, "acted: exec of page-oncall ok, attempt 1") {
		t.Errorf("alert 1's fate: %q", got)
	}
	runs := text(t, ctx, "#alert-runs")
	if !strings.Contains(runs, "page-oncall") || !strings.Contains(runs, "exit 0") || !strings.Contains(runs, "<b>paged</b> page") {
		t.Errorf("alert 1's runs (the output escaped, as text): %q", runs)
	}
	if got := texts(t, ctx, "#alert-runs details.output summary"); len(got) != 1 || got[0] != "40 lines: show" {
		t.Errorf("long stderr not folded: %q", got)
	}
	screenshot(t, ctx, "alert-runs")

	// Re-run by clicking: a second ok run of the same alert, marked re-run.
	click(t, ctx, `#fates button.rerun`, `.notice`)
	if got := text(t, ctx, ".notice"); !strings.Contains(got, "Alert 1 goes through group pager again") {
		t.Errorf("notice after re-run: %q", got)
	}
	streamtest.Eventually(t, 10*time.Second, func() error {
		runs, err := handlers.AlertRuns(context.Background(), b.conn.JS, "pager", 1)
		if err != nil || len(runs) != 2 || !runs[1].Rerun {
			return fmt.Errorf("runs of alert 1: %d (%v)", len(runs), err)
		}
		return nil
	})
	if !strings.Contains(b.logs.String(), "alert re-run") {
		t.Errorf("no log of the re-run:\n%s", b.logs)
	}

	do(t, ctx, chromedp.Navigate(b.srv.URL+"/runs?failed=1"))
	rows := texts(t, ctx, "#runs tbody tr")
	if len(rows) != 2 || !strings.Contains(rows[0], "broken") || !strings.Contains(rows[0], "exit 7") {
		t.Fatalf("failed runs: %q", rows)
	}
	screenshot(t, ctx, "runs")
	click(t, ctx, `#runs tbody tr:first-child td a`, `dl.facts`)
	if got := text(t, ctx, "h1"); got != "exec of broken failed" {
		t.Errorf("run page title %q", got)
	}
	if got := text(t, ctx, "pre.output"); got != "no route to host" {
		t.Errorf("run page's output %q", got)
	}

	do(t, ctx, chromedp.Navigate(b.srv.URL+"/dlq/1"))
	if got := texts(t, ctx, "#failed-runs tbody tr"); len(got) != 2 || !strings.Contains(got[0], "failed") || !strings.Contains(got[1], "exit 7") {
		t.Errorf("the runs that led to dead letter 1: %q", got)
	}
}
