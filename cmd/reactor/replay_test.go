package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// ndjson returns n alerts on subject, with summaries prefix0, prefix1, ...
func ndjson(subject, prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"subject":%q,"summary":"%s%d"}`+"\n", subject, prefix, i)
	}
	return b.String()
}

// statusJSON returns `reactor status --json` decoded.
func statusJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	r := mustReactor(t, "", "status", "--url", url, "--json")
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return st
}

func TestReplayTimeWindow(t *testing.T) {
	t.Parallel()
	run := startRun(t, "")
	mustReactor(t, ndjson("alerts.a", "a", 3), "send", "--url", run.url, "--file", "-")
	lastA, err := time.Parse(time.RFC3339Nano, statusJSON(t, run.url)["alerts"].(map[string]any)["last_time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	mustReactor(t, ndjson("alerts.b.x", "b", 2)+ndjson("alerts.b.y", "c", 2), "send", "--url", run.url, "--file", "-")
	run.waitIDs(10*time.Second, 7)

	// Batch A: up to and including its last alert.
	r := mustReactor(t, "", "replay", "--url", run.url, "--from-seq", "1", "--until", lastA.Format(time.RFC3339Nano), "--dry-run", "--json")
	var summaries []string
	for l := range strings.Lines(r.stdout) {
		var d dryRunLine
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("dry-run line %q: %v", l, err)
		}
		if d.Seq == 0 || d.Time.IsZero() || d.ID == "" {
			t.Errorf("dry-run line lacks fields: %q", l)
		}
		summaries = append(summaries, d.Summary)
	}
	if !slices.Equal(summaries, []string{"a0", "a1", "a2"}) {
		t.Errorf("replay of batch A listed %v", summaries)
	}

	// Batch B, through the handlers: the default config prints them.
	from := lastA.Add(time.Nanosecond).Format(time.RFC3339Nano)
	r = mustReactor(t, "", "replay", "--url", run.url, "--from-time", from)
	if got := ids(strings.Split(strings.TrimSpace(r.stdout), "\n")); len(got) != 4 {
		t.Errorf("replay of batch B printed %d alerts, want 4:\n%s", len(got), r.stdout)
	}
	for _, want := range []string{"b0", "b1", "c0", "c1"} {
		if !strings.Contains(r.stdout, " "+want+" id=") {
			t.Errorf("replay of batch B did not print %s:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "reactor: replayed 4 alerts: 4 ok, 0 failed") {
		t.Errorf("replay summary: %q", r.stderr)
	}

	// By subject, within the last hour, as text.
	r = mustReactor(t, "", "replay", "--url", run.url, "--since", "1h", "--subject", "alerts.b.y", "--dry-run")
	if n := strings.Count(r.stdout, "\n"); n != 2 || !strings.Contains(r.stdout, "alerts.b.y") || strings.Contains(r.stdout, "alerts.b.x") {
		t.Errorf("replay --subject alerts.b.y listed:\n%s", r.stdout)
	}

	// Handlers that fail: counted, reported, exit 3, never dead-lettered.
	r = reactor(t, "", "replay", "--url", run.url, "--from-seq", "4", "--until", "0s", "--json", "--config", writeFile(t, "fail.yaml",
		"handlers:\n  - on: \"alerts.b.x\"\n    exec: {command: [\"false\"]}\n  - on: \"alerts.>\"\n    print: true\n"))
	if r.code != exitPartial || strings.Count(r.stderr, "exec false: exit status 1") != 2 {
		t.Errorf("replay with failing handlers: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	// With --json, stdout is one JSON document, for jq; what the print
	// handler prints goes to stderr.
	var sum replaySummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("replay --json: stdout is not one JSON document: %v\n%s", err, r.stdout)
	}
	if strings.Count(r.stderr, "WARNING  alerts.b.y c") != 2 {
		t.Errorf("replay --json: the print handler's 2 lines are not on stderr:\n%s", r.stderr)
	}
	if sum.Replayed != 4 || sum.OK != 2 || sum.Failed != 2 || sum.FirstSeq != 4 || sum.LastSeq != 7 {
		t.Errorf("replay --json summary = %+v", sum)
	}
	st := statusJSON(t, run.url)
	if n := st["dlq"].(map[string]any)["messages"]; n != 0.0 {
		t.Errorf("replay dead-lettered %v alerts", n)
	}
	if n := st["groups"].([]any)[0].(map[string]any)["backlog"]; n != 0.0 {
		t.Errorf("the group's backlog is %v alerts after replays, want 0", n)
	}
	// The live processor handled each alert once, whatever was replayed.
	for id, n := range ids(run.stdout.snapshot()) {
		if n != 1 {
			t.Errorf("alert %s handled %d times by the live processor", id, n)
		}
	}
}
