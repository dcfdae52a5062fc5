package handlers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestExecKillsWhatTheCommandLeft: a command that exits leaving a child
// running in its process group takes it along: an action ends with its
// command.
func TestExecKillsWhatTheCommandLeft(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	e := &Exec{
		Command: []string{"sh", "-c", `sleep 30 & echo $! > "$PID_FILE"`},
		Env:     map[string]string{"PID_FILE": pidFile},
	}
	if err := e.Process(context.Background(), message("alerts.x", "s")); err != nil {
		t.Fatal(err)
	}
	pid := readPid(t, pidFile)
	streamtest.Eventually(t, 10*time.Second, func() error {
		if processAlive(pid) {
			return fmt.Errorf("sleep (pid %d) left by the command still running", pid)
		}
		return nil
	})
}

// sleeper starts `sleep 30` in a process group of its own, the test's
// child, killed and reaped at the end of the test. wait reports how it
// ended.
func sleeper(t *testing.T) (pid int, wait func() error) {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	waited := false
	wait = func() error {
		if !waited {
			err, waited = <-done, true
		}
		return err
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = wait()
	})
	return cmd.Process.Pid, wait
}

// TestGroupWatcherKillsListedGroups: when the watcher's input closes, as
// when reactor dies, it kills the groups still listed and no other; one
// that died is replaced, with the whole list.
func TestGroupWatcherKillsListedGroups(t *testing.T) {
	t.Parallel()
	k := newGroupKeeper()
	a, waitA := sleeper(t)
	b, _ := sleeper(t)
	c, waitC := sleeper(t)
	for _, pgid := range []int{a, b} {
		if err := k.add(pgid); err != nil {
			t.Fatal(err)
		}
	}
	k.remove(b)
	// The watcher dies: the next add starts another, which lists a and c.
	k.mu.Lock()
	if err := k.watcher.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = k.watcher.Wait()
	k.mu.Unlock()
	if err := k.add(c); err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	k.w.Close() // as the kernel does when this process exits
	watcher := k.watcher
	k.mu.Unlock()
	for name, wait := range map[string]func() error{"a": waitA, "c": waitC} {
		var exit *exec.ExitError
		if err := wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("listed group %s ended with %v, want killed", name, err)
		}
	}
	if _, err := watcher.Wait(); err != nil {
		t.Errorf("watcher: %v", err)
	}
	if !processAlive(b) {
		t.Error("an unlisted group was killed")
	}
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var raw []byte
	streamtest.Eventually(t, 10*time.Second, func() (err error) {
		raw, err = os.ReadFile(path)
		if err == nil && !strings.HasSuffix(string(raw), "\n") {
			err = errors.New("pid file incomplete")
		}
		return err
	})
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
