package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestKill9DuringBacklog kills `reactor run` with SIGKILL in the middle of a
// 10,000-alert backlog, restarts it on the same data dir, and counts the
// alerts the print handler printed across both runs: every one at least
// once.
//
// The backlog is made deterministic by the terminal itself: the first run's
// stdout is a pipe nobody reads, so once its buffer is full the print
// handlers block in write, holding their alerts in flight, while send stores
// all 10,000. The kill then hits workers in the middle of handling, alerts
// prefetched and not started, and thousands never delivered.
//
// Not --sync-always: SIGKILL does not lose what the kernel has buffered, only
// a power loss does, and fsyncing every write makes this test much slower
// (docs/operations.md says when to use it).
func TestKill9DuringBacklog(t *testing.T) {
	t.Parallel()
	const n = 10_000
	var alerts strings.Builder
	for i := range n {
		fmt.Fprintf(&alerts, `{"subject":"alerts.crash","id":"crash-%05d","summary":"alert %d"}`+"\n", i, i)
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dataDir := t.TempDir()
	args := []string{"--ack-wait", "2s", "--workers", "16"}
	first := startRunTo(t, w, dataDir, args...)
	w.Close() // the child has its copy
	if r := mustReactor(t, alerts.String(), "send", "--url", first.url, "--file", "-"); r.stdout != fmt.Sprintf("stored %d alerts (0 duplicates, 0 failed)\n", n) {
		t.Fatalf("send: %q", r.stdout)
	}
	if code := first.stop(syscall.SIGKILL, 10*time.Second); code != -1 {
		t.Fatalf("first run exit code %d, want -1 (killed)", code)
	}
	printed, err := io.ReadAll(r) // what the first run printed before it was killed
	if err != nil {
		t.Fatal(err)
	}
	before := ids(strings.Split(string(printed), "\n"))
	if len(before) == 0 || len(before) >= n/2 {
		t.Fatalf("first run printed %d alerts before the kill, want some but far from all", len(before))
	}

	second := startRun(t, dataDir, args...)
	missing := func() []string {
		after := ids(second.stdout.snapshot())
		var out []string
		for i := range n {
			id := fmt.Sprintf("crash-%05d", i)
			if before[id] == 0 && after[id] == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	second.waitFor(30*time.Second, second.stdout, func([]string) bool { return len(missing()) == 0 },
		"every alert handled (first run printed %d)", len(before))
	// Everything was acked: the group's backlog is empty and no alert was
	// dead-lettered.
	streamtest.Eventually(t, 10*time.Second, func() error {
		st := statusJSON(t, second.url)
		backlog, dlq := st["groups"].([]any)[0].(map[string]any)["backlog"], st["dlq"].(map[string]any)["messages"]
		if backlog != 0.0 || dlq != 0.0 {
			return fmt.Errorf("backlog of %v alerts, %v dead letters; want 0 and 0", backlog, dlq)
		}
		return nil
	}, "every alert settled after the restart")
	if code := second.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("second run exit code %d, want 0", code)
	}
	after := ids(second.stdout.snapshot())
	dups := 0
	for id := range after {
		if before[id] > 0 {
			dups++
		}
	}
	t.Logf("first run printed %d alerts, second %d, %d of them twice (in flight at the kill)", len(before), len(after), dups)
}

// TestCrashLoop: alerts published to `reactor run --sync-always`, the
// process killed with SIGKILL in the middle of the backlog and restarted
// on the same data dir each time, until every alert was printed. Every
// acknowledged alert is handled at least once, the duplicates of each kill
// stay within what was in flight or acked too recently to be on disk at
// that kill, and in the end nothing is left in the group's backlog,
// pending or in flight.
//
// 10,000 alerts and 3 kills; REACTOR_SOAK=1 (task soak): 50,000 and 12.
func TestCrashLoop(t *testing.T) {
	t.Parallel()
	n, kills, budget := 10_000, 3, time.Minute
	if os.Getenv("REACTOR_SOAK") != "" {
		n, kills, budget = 50_000, 12, 10*time.Minute
	}
	const workers = 16 // run's default, spelled out: it bounds the duplicates
	start := time.Now()
	var alerts strings.Builder
	for i := range n {
		fmt.Fprintf(&alerts, `{"subject":"alerts.loop","id":"loop-%06d","summary":"alert %d"}`+"\n", i, i)
	}
	config := writeFile(t, "print.yaml", "handlers:\n  - {on: \"alerts.>\", print: true}\n")
	dataDir := t.TempDir()
	args := []string{"--sync-always", "--ack-wait", "2s", "--workers", strconv.Itoa(workers), "--config", config}
	printed := &printLog{}

	// The backlog is stored before processing starts, so that every kill
	// hits a process in the middle of it: a first run whose group takes
	// none of the alerts serves the send, then stops.
	warmup := startRunWriter(t, nil, nil, dataDir, "--group", "warmup", "--filter", "alerts.none")
	// send returns once JetStream acknowledged every alert (it exits 3 if
	// one failed): from here on, each of them must be handled.
	if r := mustReactor(t, alerts.String(), "send", "--url", warmup.url, "--file", "-"); r.stdout != fmt.Sprintf("stored %d alerts (0 duplicates, 0 failed)\n", n) {
		t.Fatalf("send: %q", r.stdout)
	}
	published := time.Since(start)
	if code := warmup.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("warm-up run exit code %d, want 0", code)
	}

	// Each kill comes once its run has been printing for a second (twice
	// ackStateWindow, so that the bound below says something), or when 95%
	// of the alerts are printed, whichever is first. The group is not the
	// stream's first, so it is told to start with the stored alerts.
	args = append(args, "--start", "all")
	run := startRunWriter(t, printed.next(), nil, dataDir, args...)
	atKill := make([]int, kills) // distinct alerts printed when each kill came
	recent := make([]int, kills) // alerts run k printed in the flush window before its kill
	for k := range kills {
		run.waitFor(budget, run.stderr, func([]string) bool {
			return printed.printingFor(k) >= 2*ackStateWindow || printed.distinct() >= n*95/100
		}, "run %d printing for %s before its kill", k+1, 2*ackStateWindow)
		killed := time.Now()
		if code := run.stop(syscall.SIGKILL, 10*time.Second); code != -1 {
			t.Fatalf("run %d exit code %d, want -1 (killed)", k+1, code)
		}
		atKill[k] = printed.distinct()
		recent[k] = printed.since(k, killed.Add(-ackStateWindow))
		run = startRunWriter(t, printed.next(), nil, dataDir, args...)
	}
	run.waitFor(budget, run.stderr, func([]string) bool { return printed.distinct() >= n },
		"all %d alerts printed (%d so far)", n, printed.distinct())
	wall := time.Since(start)

	// Every alert was acked: the group has nothing pending or in flight,
	// and nothing was dead-lettered. Acks land just after the prints, so
	// wait for them.
	streamtest.Eventually(t, 15*time.Second, func() error {
		st := statusJSON(t, run.url)
		g := st["groups"].([]any)[0].(map[string]any)
		backlog, dlq := g["backlog"], st["dlq"].(map[string]any)["messages"]
		pending, inFlight := g["num_pending"], g["ack_pending"]
		if backlog != 0.0 || pending != 0.0 || inFlight != 0.0 || dlq != 0.0 {
			return fmt.Errorf("backlog %v, group pending %v, ack pending %v, dead letters %v; want all 0", backlog, pending, inFlight, dlq)
		}
		return nil
	}, "every alert settled after the crash loop")
	if code := run.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("last run exit code %d, want 0", code)
	}

	runs := printed.runs()
	lost := 0
	for i := range n {
		if !printed.seen(fmt.Sprintf("loop-%06d", i)) {
			lost++
		}
	}
	total, maxDups := 0, 0
	for _, r := range runs {
		for _, c := range r {
			total += c
		}
	}
	perKill := printed.duplicatesPerKill(kills)
	for _, d := range perKill {
		maxDups = max(maxDups, d)
	}
	for k, r := range runs {
		again, example := 0, ""
		for id, c := range r {
			if c > 1 {
				again, example = again+1, id
			}
		}
		if again > 0 {
			t.Errorf("run %d printed %d alerts more than once (e.g. %s): duplicates without a crash", k+1, again, example)
		}
	}
	t.Logf("alerts %d (published in %s), kills survived %d (at %v distinct alerts printed), lost %d, duplicates %d (per kill %v, max %d; printed in the %s before each kill %v), wall time %s",
		n, published.Round(time.Millisecond), kills, atKill, lost, total-n+lost, perKill, maxDups, ackStateWindow, recent, wall.Round(time.Millisecond))
	if lost > 0 {
		t.Errorf("%d acknowledged alerts never handled", lost)
	}
	// The bound of a kill's duplicates. An alert printed by run k is
	// printed again only if the server had not recorded its ack on disk
	// when run k died. With --sync-always, run waits for the server to
	// confirm each ack (DoubleAck) before its worker takes another alert,
	// so at most one printed alert per worker is unconfirmed. A confirmed
	// ack is in the consumer's state in memory; nats-server writes that
	// state to its file at most ten times a second (consumerFileStore's
	// flushLoop), so the acks of the last ~100 ms before a kill can be lost
	// too: ackStateWindow bounds that with a margin for scheduling.
	// Prefetched alerts a kill strands were not printed, and are handled
	// once, by a later run.
	for k, d := range perKill {
		if bound := workers + recent[k]; d > bound {
			t.Errorf("kill %d: %d alerts printed again, more than the %d workers held plus the %d printed in the last %s", k+1, d, workers, recent[k], ackStateWindow)
		}
	}
}

// ackStateWindow is how long before a kill an acknowledged alert may still
// be missing from the consumer state on disk: nats-server writes a file
// consumer's state at most every 100 ms; the rest is margin for a loaded
// machine.
const ackStateWindow = 500 * time.Millisecond

// printLog is the stdout of the successive runs of a crash loop: the alert
// ids each run printed, with counts, and when each line was read.
type printLog struct {
	mu    sync.Mutex
	byRun []map[string]int
	at    [][]time.Time
	all   map[string]bool
	again []time.Time // when each line of a redelivery (delivered=2 or more) was read
}

// next returns the writer for the next run's stdout.
func (l *printLog) next() io.Writer {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.all == nil {
		l.all = make(map[string]bool)
	}
	l.byRun = append(l.byRun, make(map[string]int))
	l.at = append(l.at, nil)
	return &runPrints{log: l, run: len(l.byRun) - 1}
}

// printingFor is how long ago run printed its first alert; 0 before that.
func (l *printLog) printingFor(run int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.at[run]) == 0 {
		return 0
	}
	return time.Since(l.at[run][0])
}

// first is when run printed its first alert; zero before that.
func (l *printLog) first(run int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.at[run]) == 0 {
		return time.Time{}
	}
	return l.at[run][0]
}

// total is how many alert lines every run printed, duplicates included.
func (l *printLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range l.at {
		n += len(at)
	}
	return n
}

// lastAgain is when the last redelivery was printed; zero if none was.
func (l *printLog) lastAgain() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.again) == 0 {
		return time.Time{}
	}
	return l.again[len(l.again)-1]
}

// maxGap is the longest time between two printed lines, of any runs, from
// t on, and when it began.
func (l *printLog) maxGap(t time.Time) (gap time.Duration, at time.Time) {
	l.mu.Lock()
	var all []time.Time
	for _, r := range l.at {
		all = append(all, r...)
	}
	l.mu.Unlock()
	slices.SortFunc(all, time.Time.Compare)
	prev := t
	for _, x := range all {
		if x.Before(t) {
			continue
		}
		if d := x.Sub(prev); d > gap {
			gap, at = d, prev
		}
		prev = x
	}
	return gap, at
}

// since is how many alerts run printed from t on.
func (l *printLog) since(run int, t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	at := l.at[run]
	i, _ := slices.BinarySearchFunc(at, t, time.Time.Compare)
	return len(at) - i
}

func (l *printLog) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

func (l *printLog) seen(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all[id]
}

func (l *printLog) runs() []map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.byRun)
}

// duplicatesPerKill counts, for each of the first kills runs, the alerts
// it printed that a later run printed again: what kill k repeated.
func (l *printLog) duplicatesPerKill(kills int) []int {
	runs := l.runs()
	perKill := make([]int, kills)
	for k := range kills {
		for id := range runs[k] {
			for _, later := range runs[k+1:] {
				if later[id] > 0 {
					perKill[k]++
					break
				}
			}
		}
	}
	return perKill
}

// runPrints is one run's stdout. A line cut by the kill (no newline) is
// not counted: the print handler writes each line with one write, so this
// does not happen, and a torn line would not be a handled alert anyway.
type runPrints struct {
	log     *printLog
	run     int
	partial []byte
}

func (w *runPrints) Write(p []byte) (int, error) {
	w.log.mu.Lock()
	defer w.log.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		if m := idField.FindSubmatch(w.partial[:i]); m != nil {
			now := time.Now()
			w.log.byRun[w.run][string(m[1])]++
			w.log.at[w.run] = append(w.log.at[w.run], now)
			w.log.all[string(m[1])] = true
			if d := deliveredField.FindSubmatch(w.partial[:i]); d != nil && string(d[1]) != "1" {
				w.log.again = append(w.log.again, now)
			}
		}
		w.partial = w.partial[i+1:]
	}
}
