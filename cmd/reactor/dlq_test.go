package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// listDeadLetters returns `reactor dlq ls --json`.
func listDeadLetters(t *testing.T, url string) []dlqView {
	t.Helper()
	r := mustReactor(t, "", "dlq", "ls", "--url", url, "--json", "--limit", "0")
	var out []dlqView
	for l := range strings.Lines(r.stdout) {
		var v dlqView
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("dlq ls --json line %q: %v", l, err)
		}
		out = append(out, v)
	}
	return out
}

func TestDLQRoundTrip(t *testing.T) {
	t.Parallel()
	run := startRun(t, "", "--config", "../../testdata/cli/dlq.yaml")
	mustReactor(t, ndjson("alerts.fail.x", "f", 4)+ndjson("alerts.ok", "ok", 1), "send", "--url", run.url, "--file", "-")
	run.waitIDs(10*time.Second, 1) // alerts.ok printed
	var dead []dlqView
	streamtest.Eventually(t, 10*time.Second, func() error {
		if dead = listDeadLetters(t, run.url); len(dead) < 4 {
			return fmt.Errorf("%d dead letters, want 4", len(dead))
		}
		return nil
	}, "the failing alerts dead-lettered")
	for _, d := range dead {
		if d.Subject != "alerts.fail.x" || d.Reason != "permanent" || !strings.Contains(d.Error, "exec false: exit status 1") ||
			d.Entry != "alerts.fail.>" || d.Group != "reactor" || d.Deliveries != 1 || d.MsgID == "" || d.Stored.IsZero() {
			t.Errorf("dead letter = %+v", d)
		}
	}

	// Newest first, as the console: a limit hides the oldest.
	maxSeq := dead[0].Seq
	for i, d := range dead[1:] {
		if d.Seq >= dead[i].Seq {
			t.Errorf("dlq ls --limit 0: seq %d after %d, want newest first", d.Seq, dead[i].Seq)
		}
		maxSeq = max(maxSeq, d.Seq)
	}
	ls := mustReactor(t, "", "dlq", "ls", "--url", run.url, "--limit", "2")
	if !strings.HasPrefix(ls.stdout, "SEQ  DEAD-LETTERED") || strings.Count(ls.stdout, "alerts.fail.x  permanent") != 2 ||
		!strings.Contains(ls.stdout, "\n"+fmt.Sprint(maxSeq)+" ") ||
		!strings.Contains(ls.stdout, "(the newest 2 of 4 dead letters: --limit 0 lists all)") {
		t.Errorf("dlq ls --limit 2, want the newest (seq %d first):\n%s", maxSeq, ls.stdout)
	}
	if r := mustReactor(t, "", "dlq", "ls", "--url", run.url, "--subject", "alerts.ok"); r.stdout != "no dead letters\n" {
		t.Errorf("dlq ls --subject alerts.ok: %q", r.stdout)
	}

	first := fmt.Sprint(dead[0].Seq)
	show := mustReactor(t, "", "dlq", "show", "--url", run.url, first)
	for _, want := range []string{
		"Dead letter:   " + first + " (dlq.alerts.fail.x)",
		"Reason:        permanent",
		"Entry:         alerts.fail.>",
		"Error:\n  permanent: exec false: exit status 1 (a permanent exit code)",
		"Reactor-Reason: permanent",
		"Nats-Msg-Id: ALERTS-",
		"Payload:\n  {\n    \"id\": \"" + dead[0].MsgID + "\",",
		"\"summary\": \"f",
	} {
		if !strings.Contains(show.stdout, want) {
			t.Errorf("dlq show lacks %q:\n%s", want, show.stdout)
		}
	}
	var shown dlqView
	if err := json.Unmarshal([]byte(mustReactor(t, "", "dlq", "show", "--url", run.url, "--json", first).stdout), &shown); err != nil {
		t.Fatal(err)
	}
	var payload struct{ ID, Summary string }
	if err := json.Unmarshal(shown.Payload, &payload); err != nil || payload.ID != dead[0].MsgID || shown.Headers["Reactor-Reason"][0] != "permanent" {
		t.Errorf("dlq show --json = %+v", shown)
	}

	purge := mustReactor(t, "", "dlq", "purge", "--url", run.url, first)
	if !strings.HasPrefix(purge.stdout, "purged dead letter "+first+": alerts.fail.x, permanent: permanent: exec false") {
		t.Errorf("dlq purge: %q", purge.stdout)
	}
	if r := reactor(t, "", "dlq", "show", "--url", run.url, first); r.code != exitFailure || !strings.Contains(r.stderr, "no dead letter") {
		t.Errorf("dlq show of a purged dead letter: exit %d, %q", r.code, r.stderr)
	}

	// Redriven while its handler still fails: dead-lettered again, and
	// the new dead letter says which one it came from.
	last := dead[len(dead)-1]
	mustReactor(t, "", "dlq", "redrive", "--url", run.url, fmt.Sprint(last.Seq))
	var again dlqView
	streamtest.Eventually(t, 10*time.Second, func() error {
		for _, d := range listDeadLetters(t, run.url) {
			if d.Seq > maxSeq {
				again = d
				return nil
			}
		}
		return errors.New("not dead-lettered again yet")
	}, "the redriven alert dead-lettered again")
	if again.Subject != last.Subject || again.Reason != "permanent" {
		t.Errorf("dead-lettered again: %+v", again)
	}
	if err := json.Unmarshal([]byte(mustReactor(t, "", "dlq", "show", "--url", run.url, "--json", fmt.Sprint(again.Seq)).stdout), &shown); err != nil {
		t.Fatal(err)
	}
	if got := shown.Headers["Reactor-Redriven-From"]; len(got) != 1 || got[0] != fmt.Sprint(last.Seq) || shown.RedrivenFrom != last.Seq {
		t.Errorf("the new dead letter's Reactor-Redriven-From = %v (redriven_from %d), want %d", got, shown.RedrivenFrom, last.Seq)
	}
	if r := mustReactor(t, "", "dlq", "show", "--url", run.url, fmt.Sprint(again.Seq)); !strings.Contains(r.stdout, "Redriven from: dead letter "+fmt.Sprint(last.Seq)) {
		t.Errorf("dlq show of the new dead letter:\n%s", r.stdout)
	}
	dead[len(dead)-1].Seq = again.Seq

	// Fix the handlers (the default config prints everything), then redrive.
	if code := run.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("run exit %d", code)
	}
	run = startRun(t, run.dataDir)
	second := fmt.Sprint(dead[1].Seq)
	red := mustReactor(t, "", "dlq", "redrive", "--url", run.url, second)
	if !strings.HasPrefix(red.stdout, "redriven dead letter "+second+" (alerts.fail.x) for group reactor: seq=") || !strings.Contains(red.stdout, "id=redrive-ALERTS_DLQ-"+second+"-") {
		t.Errorf("dlq redrive: %q", red.stdout)
	}
	if got := run.waitIDs(10*time.Second, 1); got[dead[1].MsgID] != 1 {
		t.Errorf("redriven alert %s not handled: %v", dead[1].MsgID, got)
	}
	all := mustReactor(t, "", "dlq", "redrive", "--url", run.url, "--all")
	if !strings.HasSuffix(all.stdout, "redriven 2 dead letters, 0 failed\n") {
		t.Errorf("dlq redrive --all: %q", all.stdout)
	}
	got := run.waitIDs(10*time.Second, 3)
	for _, d := range dead[1:] {
		if got[d.MsgID] != 1 {
			t.Errorf("alert %s handled %d times after redrive, want 1", d.MsgID, got[d.MsgID])
		}
	}
	if left := listDeadLetters(t, run.url); len(left) != 0 {
		t.Errorf("%d dead letters left after redrive --all", len(left))
	}
	if r := mustReactor(t, "", "dlq", "purge", "--url", run.url, "--all"); r.stdout != "purged 0 dead letters (all dead letters)\n" {
		t.Errorf("dlq purge --all on an empty DLQ: %q", r.stdout)
	}
	if r := reactor(t, "", "dlq", "redrive", "--url", run.url, second); r.code != exitFailure || !strings.Contains(r.stderr, "no dead letter") {
		t.Errorf("second redrive of %s: exit %d, %q", second, r.code, r.stderr)
	}
}
