package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
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
// a power loss does, and fsyncing every write makes this test ten times
// slower (the README says when to use it).
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
	// Everything was acked: the work queue is empty and no alert was
	// dead-lettered.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := statusJSON(t, second.url)
		work, dlq := st["work"].(map[string]any)["messages"], st["dlq"].(map[string]any)["messages"]
		if work == 0.0 && dlq == 0.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: %v alerts left in the work queue, %v dead letters; want 0 and 0", work, dlq)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
