package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// recordedRuns lists, through the real command, every run recorded for an alert
// (or all with seq 0).
func recordedRuns(t *testing.T, url string, seq uint64) []handlers.Run {
	t.Helper()
	args := []string{"runs", "ls", "--url", url, "--json", "--limit", "10000"}
	if seq > 0 {
		args = append(args, "--alert", fmt.Sprint(seq))
	}
	var page handlers.RunPage
	if err := json.Unmarshal([]byte(mustReactor(t, "", args...).stdout), &page); err != nil {
		t.Fatal(err)
	}
	return page.Runs
}

// TestRunsCommands: a run's record lists, shows with what the command
// printed, and a re-run goes through the group again and records a run
// linked to the first.
func TestRunsCommands(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "reactor.yaml", `handlers:
  - on: "alerts.>"
    name: restart
    suppress: {for: 10m}   # a re-run is nobody's repeat
    exec:
      command: ["sh", "-c", 'echo "restarting $REACTOR_ALERT_NAME"; echo "warning: slow" >&2']
`)
	p := startRun(t, "", "--config", cfg)
	mustReactor(t, "", "send", "--url", p.url, "--on", "web", "down")
	var runs []handlers.Run
	streamtest.Eventually(t, 10*time.Second, func() error {
		if runs = recordedRuns(t, p.url, 1); len(runs) != 1 {
			return fmt.Errorf("%d runs for alert 1", len(runs))
		}
		return nil
	})
	r := runs[0]
	if r.Group != "reactor" || r.Entry != "restart" || r.Outcome != handlers.RunOK || r.Stdout == nil || r.Stdout.Text != "restarting web\n" {
		t.Fatalf("run %+v", r)
	}
	table := mustReactor(t, "", "runs", "ls", "--url", p.url).stdout
	if !strings.Contains(table, "RUN ") || !strings.Contains(table, r.ID) || !strings.Contains(table, " restart ") || !strings.Contains(table, "exit 0") {
		t.Errorf("runs ls:\n%s", table)
	}
	show := mustReactor(t, "", "runs", "show", "--url", p.url, r.ID).stdout
	for _, want := range []string{"Run:", r.ID, "Entry:", "restart", "Stdout (15 bytes):", "  restarting web", "Stderr (14 bytes):", "  warning: slow", "Result:", "exit 0"} {
		if !strings.Contains(show, want) {
			t.Errorf("runs show lacks %q:\n%s", want, show)
		}
	}
	if res := reactor(t, "", "runs", "show", "--url", p.url, "01NOTARUN"); res.code != 1 || !strings.Contains(res.stderr, "no run with that id") {
		t.Errorf("show of an unknown run: %+v", res)
	}

	out := mustReactor(t, "", "runs", "rerun", "--url", p.url, "1").stdout
	if !strings.Contains(out, "re-running alert 1 (alerts.web) for group reactor: stored as seq 2") {
		t.Errorf("rerun said %q", out)
	}
	streamtest.Eventually(t, 10*time.Second, func() error {
		if runs = recordedRuns(t, p.url, 1); len(runs) != 2 {
			return fmt.Errorf("%d runs for alert 1", len(runs))
		}
		return nil
	})
	if again := runs[0]; !again.Rerun || again.RerunSeq != 2 || again.AlertSeq != 1 || again.Outcome != handlers.RunOK || again.ID == r.ID || runs[1].ID != r.ID {
		t.Errorf("runs of alert 1, newest first: %+v; want a new run marked rerun from seq 2, then the first", runs)
	}
	if res := reactor(t, "", "runs", "rerun", "--url", p.url, "99"); res.code != 1 || !strings.Contains(res.stderr, "no alert 99 in ALERTS (first 1, last 2)") {
		t.Errorf("rerun of an unknown alert: %+v", res)
	}
	if res := reactor(t, "", "runs", "rerun", "--url", p.url, "--group", "nobody", "1"); res.code != 1 || !strings.Contains(res.stderr, `no consumer group with that name: "nobody"`) {
		t.Errorf("rerun for an unknown group: %+v", res)
	}
}

// TestKill9LosesNoRunRecord kills `reactor run` with SIGKILL while it works
// through a backlog with an exec action, restarts it, and checks that every
// alert, all acknowledged in the end, has a record of a successful run: a
// record is written before its alert is acknowledged.
func TestKill9LosesNoRunRecord(t *testing.T) {
	t.Parallel()
	const n = 300
	cfg := writeFile(t, "reactor.yaml", `handlers:
  - on: "alerts.>"
    exec: {command: ["sh", "-c", "sleep 0.01"]}
`)
	var alerts strings.Builder
	for i := range n {
		fmt.Fprintf(&alerts, `{"subject":"alerts.kill","id":"k-%03d","summary":"alert %d"}`+"\n", i, i)
	}
	dataDir := t.TempDir()
	args := []string{"--config", cfg, "--workers", "8", "--ack-wait", "2s"}
	first := startRun(t, dataDir, args...)
	mustReactor(t, alerts.String(), "send", "--url", first.url, "--file", "-")
	streamtest.Eventually(t, 20*time.Second, func() error {
		if got := len(recordedRuns(t, first.url, 0)); got < n/4 {
			return fmt.Errorf("%d runs recorded", got)
		}
		return nil
	}, "a quarter of the backlog handled")
	first.stop(syscall.SIGKILL, 10*time.Second)

	second := startRun(t, dataDir, args...)
	streamtest.Eventually(t, 60*time.Second, func() error {
		ok := map[uint64]bool{}
		for _, r := range recordedRuns(t, second.url, 0) {
			if r.Outcome == handlers.RunOK {
				ok[r.AlertSeq] = true
			}
		}
		var missing []uint64
		for seq := uint64(1); seq <= n; seq++ {
			if !ok[seq] {
				missing = append(missing, seq)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d alerts without a successful run, first %v", len(missing), missing[:min(5, len(missing))])
		}
		return nil
	}, "every alert with a record of a successful run")
	status := mustReactor(t, "", "status", "--url", second.url, "--json").stdout
	if !strings.Contains(status, `"backlog": 0`) {
		t.Errorf("backlog left after the restart:\n%s", status)
	}
}

// TestReplayRecordsItsRuns: replay records the runs of the actions it runs
// again, under --group and marked as the replay's, runs them whatever the
// live group suppressed, and gives the templates --public-url's links.
func TestReplayRecordsItsRuns(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "reactor.yaml", `handlers:
  - on: "alerts.>"
    name: restart
    suppress: {for: 10m}
    exec:
      command: ["echo", "restart {{.Name}} {{.ConsoleURL}}"]
`)
	p := startRun(t, "", "--config", cfg)
	mustReactor(t, "", "send", "--url", p.url, "--on", "web", "down")
	streamtest.Eventually(t, 10*time.Second, func() error {
		if runs := recordedRuns(t, p.url, 1); len(runs) != 1 {
			return fmt.Errorf("%d runs for alert 1", len(runs))
		}
		return nil
	})

	res := mustReactor(t, "", "replay", "--url", p.url, "--from-seq", "1", "--config", cfg, "--group", "audit", "--public-url", "https://reactor.example.com")
	if !strings.Contains(res.stderr, "reactor: replayed 1 alert: 1 ok, 0 failed") {
		t.Fatalf("replay said %q", res.stderr)
	}
	runs := recordedRuns(t, p.url, 1)
	if len(runs) != 2 {
		t.Fatalf("%d runs for alert 1 after the replay, want 2: %+v", len(runs), runs)
	}
	r := runs[0]
	want := "restart web https://reactor.example.com/alerts/1\n"
	if !r.Replay || r.Rerun || r.Group != "audit" || r.Entry != "restart" || r.Outcome != handlers.RunOK || r.Stdout == nil || r.Stdout.Text != want {
		t.Errorf("replay's run %+v (stdout %+v); want a run of group audit marked replay that printed %q", r, r.Stdout, want)
	}
	if live := runs[1]; live.Replay || live.Group != "reactor" {
		t.Errorf("the live run %+v is marked replay or lost its group", live)
	}
	table := mustReactor(t, "", "runs", "ls", "--url", p.url, "--group", "audit").stdout
	if !strings.Contains(table, r.ID) || !strings.Contains(table, "1 (replay)") || strings.Contains(table, runs[1].ID) {
		t.Errorf("runs ls --group audit:\n%s", table)
	}
	if show := mustReactor(t, "", "runs", "show", "--url", p.url, r.ID).stdout; !strings.Contains(show, "Replay:") {
		t.Errorf("runs show does not say replay:\n%s", show)
	}
	if res := reactor(t, "", "replay", "--url", p.url, "--from-seq", "1", "--public-url", "reactor.example.com"); res.code != 2 || !strings.Contains(res.stderr, "bad --public-url") {
		t.Errorf("replay with a bad --public-url: %+v", res)
	}
}
