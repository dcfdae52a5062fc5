package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestExecStdinAndEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "alert.json")
	e := &Exec{
		Command: []string{"sh", "-c", `cat > "$OUT" && env > "$OUT.env"`},
		Env:     map[string]string{"OUT": out},
	}
	data := `{"id":"a1","severity":"error","summary":"disk 95% on db-3","labels":{"host":"db-3"}}`
	if err := e.Process(context.Background(), message("alerts.disk_full", data)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got stream.Alert
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("stdin is not an alert: %v: %q", err, raw)
	}
	streamtest.AssertAlert(t, got, stream.Alert{ID: "a1", Name: "disk_full", Subject: "alerts.disk_full", Severity: "error",
		Summary: "disk 95% on db-3", Labels: map[string]string{"host": "db-3"}, Timestamp: fixedTime})

	env, err := os.ReadFile(out + ".env")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"REACTOR_SUBJECT=alerts.disk_full", "REACTOR_ALERT_ID=a1", "REACTOR_ALERT_NAME=disk_full",
		"REACTOR_SEVERITY=error", "REACTOR_DELIVERED=2", "OUT=" + out,
	} {
		if !strings.Contains("\n"+string(env), "\n"+want+"\n") {
			t.Errorf("environment lacks %s", want)
		}
	}
	if path := os.Getenv("PATH"); path != "" && !strings.Contains(string(env), "PATH="+path) {
		t.Errorf("environment does not inherit PATH")
	}
}

func TestExecFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		command   []string
		permanent []int
		wantPerm  bool
		wantIs    error
		want      []string // substrings of the error
		notWant   []string
	}{
		{
			name:    "exit 1 is retried",
			command: []string{"sh", "-c", "echo 'pager down' >&2; exit 1", "sh", "SECRET-ARG"},
			want:    []string{"exec sh: exit status 1", `stderr: "pager down"`},
			notWant: []string{"SECRET-ARG", "echo"},
		},
		{
			name:      "a permanent exit code dead-letters",
			command:   []string{"sh", "-c", "echo 'no such team' >&2; exit 2"},
			permanent: []int{2, 3},
			wantPerm:  true,
			want:      []string{"exec sh: exit status 2 (a permanent exit code)", `stderr: "no such team"`},
		},
		{
			name:      "other codes stay retryable",
			command:   []string{"sh", "-c", "exit 4"},
			permanent: []int{2},
			want:      []string{"exec sh: exit status 4"},
			notWant:   []string{"stderr"},
		},
		{
			name:    "only the end of stderr",
			command: []string{"sh", "-c", `i=0; while [ $i -lt 100 ]; do echo "line $i of noise" >&2; i=$((i+1)); done; echo THE-END >&2; exit 1`},
			want:    []string{"THE-END"},
			notWant: []string{"line 1 of noise"},
		},
		{
			name:     "command not in PATH",
			command:  []string{"reactor-no-such-command-xyz"},
			wantPerm: true,
			wantIs:   exec.ErrNotFound,
			want:     []string{"exec reactor-no-such-command-xyz:"},
		},
		{
			name:     "missing absolute path",
			command:  []string{"/nonexistent/reactor/page"},
			wantPerm: true,
			wantIs:   fs.ErrNotExist,
		},
		{
			name:     "no command",
			command:  nil,
			wantPerm: true,
			want:     []string{"exec: command is required"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := &Exec{Command: tt.command, PermanentExitCodes: tt.permanent}
			err := e.Process(context.Background(), message("alerts.x", "s"))
			if err == nil {
				t.Fatal("no error")
			}
			var perm *processor.PermanentError
			var retry *processor.RetryError
			if errors.As(err, &perm) != tt.wantPerm || errors.As(err, &retry) {
				t.Errorf("error %q: permanent %v, want %v", err, !tt.wantPerm, tt.wantPerm)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q does not wrap %v", err, tt.wantIs)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains %q", err, s)
				}
			}
		})
	}
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	e := &Exec{
		// The shell starts sleep in the background, so killing the shell
		// alone would leave it running.
		Command: []string{"sh", "-c", `sleep 30 & echo $! > "$PID_FILE"; wait`},
		Env:     map[string]string{"PID_FILE": pidFile},
		Timeout: 200 * time.Millisecond,
	}
	err := e.Process(context.Background(), message("alerts.x", "s"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v does not wrap context.DeadlineExceeded", err)
	}
	var perm *processor.PermanentError
	if errors.As(err, &perm) || !strings.Contains(err.Error(), "timeout 200ms") {
		t.Errorf("error %q: want a retryable timeout error", err)
	}
	if runtime.GOOS != "linux" {
		return // the liveness check reads /proc
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	// The kill is sent before Process returns, but an orphan is reaped by
	// init asynchronously: wait for it, with a bound far above the need.
	streamtest.Eventually(t, 10*time.Second, func() error {
		if processAlive(pid) {
			return fmt.Errorf("grandchild sleep (pid %d) still running", pid)
		}
		return nil
	})
}

// processAlive reports whether pid runs (a zombie does not).
func processAlive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func TestExecHonoursCancellation(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	started := filepath.Join(t.TempDir(), "started")
	e := &Exec{Command: []string{"sh", "-c", `touch "$STARTED"; exec sleep 10`}, Env: map[string]string{"STARTED": started}}
	done := make(chan error, 1)
	go func() { done <- e.Process(ctx, message("alerts.x", "s")) }()
	defer cancel()
	streamtest.Eventually(t, 10*time.Second, func() error {
		_, err := os.Stat(started) // the command touches it first
		return err
	}, "the command to start")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
}

func TestExecBadAlertRunsNothing(t *testing.T) {
	t.Parallel()
	ran := filepath.Join(t.TempDir(), "ran")
	e := &Exec{Command: []string{"touch", ran}}
	err := e.Process(context.Background(), message("alerts.x", `{"nope":true}`))
	var perm *processor.PermanentError
	if !errors.As(err, &perm) {
		t.Errorf("error %v, want permanent", err)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("the command ran for an invalid alert")
	}
}

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	tb := newTailBuffer(8)
	for _, s := range []string{"abc", "defghij", "k", "é", "xyzw"} {
		if n, err := tb.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := tb.output(); got.Text != "jkéxyzw" || len(tb.buf) != 8 || got.Bytes != 17 || !got.Truncated {
		t.Errorf("output = %+v (%d bytes kept), want the last 8 bytes %q of 17, truncated", got, len(tb.buf), "jkéxyzw")
	}
	if got := tb.tail(4); got != "xyzw" {
		t.Errorf("tail(4) = %q", got)
	}

	// A rune cut in half at the start of the tail is dropped.
	tb = newTailBuffer(5)
	_, _ = tb.Write([]byte("éabcd")) // 6 bytes: the tail starts inside "é"
	if got := tb.output(); got.Text != "abcd" || !got.Truncated {
		t.Errorf("output = %+v, want %q, truncated", got, "abcd")
	}
	if newTailBuffer(5).output() != nil {
		t.Error("nothing written: want no output")
	}
	tb = newTailBuffer(0)
	_, _ = tb.Write([]byte(" all of it \n"))
	if got := tb.output(); got.Text != " all of it \n" || got.Truncated || got.Bytes != 12 {
		t.Errorf("output = %+v, want it whole", got)
	}
}
