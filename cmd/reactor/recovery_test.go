package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// recoveryBudget is how soon a process restarted after a crash of its
// group's processes must handle an alert again, with default settings.
const recoveryBudget = 5 * time.Second

// TestQuickKillsRecoverInSeconds: `reactor run` with a slow action (a
// webhook that answers in 50 ms, 16 workers) on a backlog, killed with
// SIGKILL three times 1.5 s apart and restarted at once on the same data
// dir each time. Each dead process held up to a thousand alerts
// (prefetched or running), as many as the group's MaxAckPending: the last
// process must handle an alert within recoveryBudget of its start, and
// every alert is handled in the end.
func TestQuickKillsRecoverInSeconds(t *testing.T) {
	t.Parallel()
	const n, kills = 3000, 3
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hook.Close)
	config := writeFile(t, "slow.yaml", fmt.Sprintf("handlers:\n  - on: \"alerts.>\"\n    print: true\n    webhook: {url: %q}\n", hook.URL))
	var alerts strings.Builder
	for i := range n {
		fmt.Fprintf(&alerts, `{"subject":"alerts.quick","id":"quick-%05d","summary":"alert %d"}`+"\n", i, i)
	}
	dataDir := t.TempDir()
	warmup := startRunWriter(t, nil, nil, dataDir, "--group", "warmup", "--filter", "alerts.none")
	if r := mustReactor(t, alerts.String(), "send", "--url", warmup.url, "--file", "-"); r.stdout != fmt.Sprintf("stored %d alerts (0 duplicates, 0 failed)\n", n) {
		t.Fatalf("send: %q", r.stdout)
	}
	if code := warmup.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("warm-up run exit code %d, want 0", code)
	}

	args := []string{"--config", config, "--start", "all"}
	printed := &printLog{}
	run := startRunWriter(t, printed.next(), nil, dataDir, args...)
	run.waitFor(time.Minute, run.stderr, func([]string) bool { return printed.distinct() >= 100 },
		"the first run handling alerts")
	started := make([]time.Time, kills)
	for k := range kills {
		if code := run.stop(syscall.SIGKILL, 10*time.Second); code != -1 {
			t.Fatalf("run %d exit code %d, want -1 (killed)", k+1, code)
		}
		started[k] = time.Now()
		run = startRunWriter(t, printed.next(), nil, dataDir, args...)
		if k < kills-1 {
			<-time.After(time.Until(started[k].Add(1500 * time.Millisecond)))
		}
	}
	last := kills // the index of the last run in printed
	streamtest.Eventually(t, time.Minute, func() error {
		if printed.printingFor(last) == 0 {
			return fmt.Errorf("the last run has handled nothing %s after its start", time.Since(started[kills-1]).Round(time.Millisecond))
		}
		return nil
	}, "the last run handling an alert")
	took := printed.first(last).Sub(started[kills-1])
	run.waitFor(2*time.Minute, run.stderr, func([]string) bool { return printed.distinct() >= n },
		"all %d alerts handled (%d so far)", n, printed.distinct())
	var firsts []string
	for r := 1; r <= kills; r++ {
		if printed.printingFor(r) == 0 {
			firsts = append(firsts, "none")
		} else {
			firsts = append(firsts, printed.first(r).Sub(started[r-1]).Round(time.Millisecond).String())
		}
	}
	t.Logf("first alert handled after each restart: %v; alerts handled %d, printed %d times in all", firsts, printed.distinct(), printed.total())
	if took > recoveryBudget {
		t.Errorf("the last run handled its first alert %s after its start, want within %s", took.Round(time.Millisecond), recoveryBudget)
	}
}
