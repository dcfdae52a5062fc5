package main

import (
	"strings"
	"testing"
	"time"
)

func TestGroupPauseResume(t *testing.T) {
	t.Parallel()
	run := startRun(t, "")
	url := []string{"--url", run.url}
	r := mustReactor(t, "", append([]string{"group", "pause"}, append(url, "reactor")...)...)
	if want := "paused group reactor until resumed"; !strings.Contains(r.stdout, want) {
		t.Errorf("group pause said %q, want %q", r.stdout, want)
	}
	run.waitStderr(10*time.Second, "group paused")
	mustReactor(t, "", append([]string{"send"}, append(url, "--on", "cpu", "while paused")...)...)
	st := mustReactor(t, "", append([]string{"status"}, url...)...)
	if !strings.Contains(st.stdout, "STATE") || !strings.Contains(st.stdout, "  paused") || !strings.Contains(st.stdout, "reactor  1 ") {
		t.Errorf("status of a paused group with one alert waiting:\n%s", st.stdout)
	}
	if ls := run.stdout.snapshot(); len(ls) != 0 {
		t.Fatalf("paused group handled alerts: %q", ls)
	}

	mustReactor(t, "", append([]string{"group", "resume"}, append(url, "reactor")...)...)
	run.waitStderr(10*time.Second, "group resumed")
	run.waitIDs(10*time.Second, 1)

	r = reactor(t, "", append([]string{"group", "pause"}, append(url, "nope")...)...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "no consumer group") || !strings.Contains(r.stderr, "reactor status") {
		t.Errorf("pause of an unknown group: exit %d, stderr %q", r.code, r.stderr)
	}
	r = reactor(t, "", "group", "pause")
	if r.code != exitUsage {
		t.Errorf("pause without a group: exit %d, want %d", r.code, exitUsage)
	}
}
