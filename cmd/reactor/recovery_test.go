package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// recoveryBudget is how soon a process restarted after a crash of its
// group's processes must handle an alert again, with default settings;
// heldBudget is how soon after a crash the alerts the dead process held
// must be handled again.
const (
	recoveryBudget = 5 * time.Second
	heldBudget     = 10 * time.Second
)

// TestQuickKillsRecoverInSeconds: `reactor run` with a slow action (a
// webhook that answers in 50 ms, 16 workers) on a backlog, killed with
// SIGKILL three times 1.5 s apart and restarted at once on the same data
// dir each time. Each dead process held up to a thousand alerts
// (prefetched or running), as many as the group's MaxAckPending: the last
// process must handle an alert within recoveryBudget of its start, the
// alerts the dead held must all be handled again within heldBudget of the
// last kill, and every alert is handled in the end.
//
// REACTOR_SOAK=1 (task soak): 100,000 alerts, a 25 ms webhook, 20 kills at
// 0.5-3 s intervals of a fixed seed; no restart may go more than
// recoveryBudget without handling an alert (those killed sooner are not
// held to it), and the duplicates of each kill and the longest time the
// group handled nothing are reported.
func TestQuickKillsRecoverInSeconds(t *testing.T) {
	t.Parallel()
	n, kills, work := 3000, 3, 50*time.Millisecond
	interval := func() time.Duration { return 1500 * time.Millisecond }
	if streamtest.Soak() {
		n, kills, work = 100_000, 20, 25*time.Millisecond
		rnd := rand.New(rand.NewPCG(23, 23)) // the same intervals every soak
		interval = func() time.Duration {
			return 500*time.Millisecond + time.Duration(rnd.Int64N(int64(2500*time.Millisecond)+1))
		}
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(work):
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hook.Close)
	config := writeFile(t, "slow.yaml", fmt.Sprintf("handlers:\n  - on: \"alerts.>\"\n    print: true\n    webhook: {url: %q}\n", hook.URL))
	var alerts strings.Builder
	for i := range n {
		fmt.Fprintf(&alerts, `{"subject":"alerts.quick","id":"quick-%06d","summary":"alert %d"}`+"\n", i, i)
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
	started, killed := make([]time.Time, kills), make([]time.Time, kills)
	for k := range kills {
		if code := run.stop(syscall.SIGKILL, 10*time.Second); code != -1 {
			t.Fatalf("run %d exit code %d, want -1 (killed)", k+1, code)
		}
		killed[k] = time.Now()
		started[k] = time.Now()
		run = startRunWriter(t, printed.next(), nil, dataDir, args...)
		if k < kills-1 {
			<-time.After(time.Until(started[k].Add(interval())))
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
	run.waitFor(time.Duration(n)*work/4+time.Minute, run.stderr, func([]string) bool { return printed.distinct() >= n },
		"all %d alerts handled (%d so far)", n, printed.distinct())
	streamtest.Eventually(t, 15*time.Second, func() error {
		st := statusJSON(t, run.url)
		g := st["groups"].([]any)[0].(map[string]any)
		if g["num_pending"] != 0.0 || g["ack_pending"] != 0.0 || st["dlq"].(map[string]any)["messages"] != 0.0 {
			return fmt.Errorf("group pending %v, ack pending %v, dead letters %v; want all 0", g["num_pending"], g["ack_pending"], st["dlq"].(map[string]any)["messages"])
		}
		return nil
	}, "every alert settled")

	var firsts []string
	for r := 1; r <= kills; r++ {
		if f := printed.first(r); f.IsZero() {
			firsts = append(firsts, "none")
		} else {
			firsts = append(firsts, f.Sub(started[r-1]).Round(time.Millisecond).String())
		}
	}
	again := printed.lastAgain().Sub(killed[kills-1])
	gap, gapAt := printed.maxGap(killed[0])
	perKill := printed.duplicatesPerKill(kills)
	t.Logf("%d alerts, %d kills: first alert handled %v after each restart; last redelivery handled %s after the last kill; longest time without an alert handled %s (%s after the first kill); printed %d times in all, duplicates per kill %v",
		n, kills, firsts, again.Round(time.Millisecond), gap.Round(time.Millisecond), gapAt.Sub(killed[0]).Round(time.Millisecond), printed.total(), perKill)
	if took > recoveryBudget {
		t.Errorf("the last run handled its first alert %s after its start, want within %s", took.Round(time.Millisecond), recoveryBudget)
	}
	if again > heldBudget {
		t.Errorf("the alerts dead processes held were handled again until %s after the last kill, want within %s", again.Round(time.Millisecond), heldBudget)
	}
	for r := 1; r < kills; r++ { // the last run is checked above
		idle := killed[r].Sub(started[r-1]) // killed before it handled anything
		if f := printed.first(r); !f.IsZero() {
			idle = f.Sub(started[r-1])
		}
		if idle > recoveryBudget {
			t.Errorf("restart %d handled nothing for %s after its start, want at most %s", r, idle.Round(time.Millisecond), recoveryBudget)
		}
	}
}

// TestNoActionOutlivesReactor: an exec action whose shell runs `sleep 30`
// as its own child (a grandchild of reactor) dies whole with reactor,
// killed with SIGKILL or forced out by a second Ctrl-C: no process of the
// action is left (checked in /proc, by the alert id in their environment).
// After the kill, the restarted run handles the alert again, never beside
// its earlier self.
func TestNoActionOutlivesReactor(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc; the parent-death signal and the group watcher are Linux's")
	}
	config := writeFile(t, "sleep.yaml", "handlers:\n  - on: \"alerts.>\"\n    exec: {command: [\"sh\", \"-c\", \"sleep 30; true\"], timeout: 1m}\n")
	for _, tc := range []struct {
		name     string
		stop     func(*runProc) int
		wantCode int
	}{
		{"kill -9", func(p *runProc) int { return p.stop(syscall.SIGKILL, 10*time.Second) }, -1},
		{"forced exit", func(p *runProc) int {
			if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			p.waitStderr(10*time.Second, "reactor: stopping")
			return p.stop(syscall.SIGINT, 10*time.Second)
		}, exitInterrupted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := fmt.Sprintf("orphan-%s-%d", strings.ReplaceAll(tc.name, " ", ""), time.Now().UnixNano())
			args := []string{"--config", config, "--shutdown-timeout", "1s"}
			run := startRun(t, "", args...)
			mustReactor(t, "", "send", "--url", run.url, "--on", "orphan", "--id", id, "an action that runs 30 s")
			streamtest.Eventually(t, 30*time.Second, func() error {
				if procs := actionProcs(t, id, "1"); len(procs) < 2 {
					return fmt.Errorf("processes of the action: %v, want its shell and sleep", procs)
				}
				return nil
			}, "the action running")
			if code := tc.stop(run); code != tc.wantCode {
				t.Fatalf("exit code %d, want %d", code, tc.wantCode)
			}
			streamtest.Eventually(t, 10*time.Second, func() error {
				if procs := actionProcs(t, id, ""); len(procs) > 0 {
					return fmt.Errorf("processes of the action left running: %v", procs)
				}
				return nil
			}, "no process of the action left")
			if tc.wantCode != -1 {
				return
			}
			// The alert was not acknowledged: the restarted run handles it
			// again, and no process of the first run is there beside it.
			again := startRun(t, run.dataDir, args...)
			streamtest.Eventually(t, 30*time.Second, func() error {
				if procs := actionProcs(t, id, "2"); len(procs) == 0 {
					return fmt.Errorf("the action not running again yet")
				}
				return nil
			}, "the action running again after the restart")
			if procs := actionProcs(t, id, "1"); len(procs) > 0 {
				t.Errorf("the first run's action still runs beside the second: %v", procs)
			}
			if code := again.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
				t.Errorf("second run exit code %d, want 0", code)
			}
			if procs := actionProcs(t, id, ""); len(procs) > 0 {
				t.Errorf("processes of the action left after a graceful stop: %v", procs)
			}
		})
	}
}

// actionProcs lists the live processes (pid and command) of the exec
// action run for the alert id, at that delivery ("" for any): those whose
// environment says so.
func actionProcs(t *testing.T, id, delivered string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		env, err := os.ReadFile(filepath.Join(dir, "environ"))
		if err != nil || !bytes.Contains(env, []byte("\x00REACTOR_ALERT_ID="+id+"\x00")) {
			continue
		}
		if delivered != "" && !bytes.Contains(env, []byte("\x00REACTOR_DELIVERED="+delivered+"\x00")) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// The state follows the command's name in parentheses; a zombie
		// (Z) or a dead process (X) does not run.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
			continue
		}
		start := bytes.IndexByte(stat, '(')
		out = append(out, fmt.Sprintf("%d %s", pid, stat[start+1:i]))
	}
	return out
}
