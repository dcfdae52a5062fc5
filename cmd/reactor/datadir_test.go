package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream"
)

// A data dir is used by one process at a time: a second `reactor run` on it
// exits 1 naming the dir and the holder's pid, and leaves the dir and the
// first process as they were.
func TestRunDataDirInUse(t *testing.T) {
	t.Parallel()
	first := startRun(t, "")
	lockFile := filepath.Join(first.dataDir, stream.LockFile)
	before, err := os.Stat(lockFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := fmt.Sprint(first.cmd.Process.Pid)

	r := reactor(t, "", "run", "--listen", "127.0.0.1:0", "--data-dir", first.dataDir, "--log-format", "json")
	if r.code != exitFailure {
		t.Fatalf("second run on %s: exit %d, want %d\nstderr: %s", first.dataDir, r.code, exitFailure, r.stderr)
	}
	errLines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := errLines[len(errLines)-1]
	for _, want := range []string{"reactor: ", fmt.Sprintf("%q", first.dataDir), "pid " + pid} {
		if !strings.Contains(last, want) {
			t.Errorf("second run's error %q lacks %q", last, want)
		}
	}
	if strings.Contains(r.stderr, "ready") || r.stdout != "" {
		t.Errorf("second run served: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	after, err := os.Stat(lockFile)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(lockFile); strings.TrimSpace(string(got)) != pid || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the refused run touched the lock file: %q, modified %v (was %v)", got, after.ModTime(), before.ModTime())
	}

	// The first process goes on handling alerts, and once it has stopped
	// the dir is free again.
	mustReactor(t, "", "send", "--url", first.url, "--on", "disk_full", "still here")
	first.waitIDs(10*time.Second, 1)
	if code := first.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("first run exit code after SIGTERM = %d, want 0", code)
	}
	startRun(t, first.dataDir)
}
