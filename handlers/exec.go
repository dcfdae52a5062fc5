package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// DefaultExecTimeout bounds one run of an Exec command unless Exec.Timeout
// says otherwise.
const DefaultExecTimeout = 30 * time.Second

// execWaitDelay is how long Exec waits, once the command is killed, for
// the output pipes to close (a grandchild that escaped the process group may
// hold them).
const execWaitDelay = 5 * time.Second

// stderrTail is how much of the end of a failed command's stderr its error
// carries.
const stderrTail = 512

// Exec runs a command for each alert, with the alert as JSON on its standard
// input. No shell is involved: Command is the argv, so write
// []string{"sh", "-c", "..."} to get one.
//
// The command inherits reactor's environment plus Env, and these variables:
// REACTOR_SUBJECT, REACTOR_ALERT_ID, REACTOR_ALERT_NAME, REACTOR_SEVERITY and
// REACTOR_DELIVERED (1 on the first attempt; a command that must not repeat
// its effect can check it). Its standard output is discarded.
//
// Exit status 0 acks the alert. Another status is a plain error (retried with
// backoff, then dead-lettered) carrying the status and the end of stderr,
// unless it is listed in PermanentExitCodes. A command that cannot be found
// or run is a permanent error. On timeout or cancellation the command's whole
// process group is killed (on Unix) and the error wraps the context's.
//
// Nothing the command starts outlives it, nor reactor (on Linux): when it
// exits, what it left running in its process group is killed, and if
// reactor dies meanwhile (kill -9, a forced exit), the whole group is
// killed with it. A process that leaves the group (setsid, a daemon) is
// on its own.
//
// The zero value is not usable: Command is required. Exec is safe for
// concurrent use.
type Exec struct {
	// Command is the program and its arguments. Required.
	Command []string
	// Env adds variables to the command's environment, over reactor's own.
	Env map[string]string
	// Dir is the command's working directory. Defaults to reactor's.
	Dir string
	// Timeout bounds each run. Defaults to DefaultExecTimeout (30s).
	Timeout time.Duration
	// PermanentExitCodes are exit statuses that mean "retrying will not
	// help": the alert is dead-lettered at once. Defaults to none.
	PermanentExitCodes []int
	// Logger receives a debug record per run, and a warning when the
	// command's process group cannot be handed to the watcher that kills
	// it if reactor dies. Defaults to discarding.
	Logger *slog.Logger
}

// Process decodes the alert (a permanent error if it is invalid) and runs
// the command.
func (e *Exec) Process(ctx context.Context, m *processor.Message) error {
	a, err := Decode(m)
	if err != nil {
		return err
	}
	return e.handle(ctx, m, a)
}

func (e *Exec) validate() error {
	if len(e.Command) == 0 || e.Command[0] == "" {
		return errors.New("exec: command is required")
	}
	if e.Timeout < 0 {
		return fmt.Errorf("exec: negative timeout %s", e.Timeout)
	}
	return nil
}

func (e *Exec) handle(ctx context.Context, m *processor.Message, a stream.Alert) error {
	if err := e.validate(); err != nil {
		return processor.Permanent(err)
	}
	// Errors name the program, never its arguments: they may hold secrets.
	name := e.Command[0]
	payload, err := json.Marshal(a)
	if err != nil {
		return processor.Permanent(fmt.Errorf("exec %s: encode alert: %w", name, err))
	}
	timeout := e.Timeout
	if timeout == 0 {
		timeout = DefaultExecTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout,
		fmt.Errorf("exec %s: timeout %s: %w", name, timeout, context.DeadlineExceeded))
	defer cancel()

	cmd := exec.CommandContext(ctx, name, e.Command[1:]...)
	cmd.Dir = e.Dir
	cmd.Stdin = bytes.NewReader(payload)
	tail := &tailBuffer{max: stderrTail}
	cmd.Stderr = tail
	cmd.Env = e.environ(m, a)
	cmd.WaitDelay = execWaitDelay

	start := time.Now()
	err = run(cmd, e.Logger)
	if l := e.Logger; l != nil && l.Enabled(ctx, slog.LevelDebug) {
		l.LogAttrs(ctx, slog.LevelDebug, "exec done",
			slog.String("command", name), slog.String("subject", m.Subject()),
			slog.Uint64("seq", m.Sequence()), slog.Duration("duration", time.Since(start)),
			slog.Int("exit_code", cmd.ProcessState.ExitCode()))
	}
	return e.classify(ctx, name, err, tail.String())
}

// classify turns the result of cmd.Run into a handler result.
func (e *Exec) classify(ctx context.Context, name string, err error, stderr string) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("exec %s: %w", name, context.Cause(ctx))
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return processor.Permanent(fmt.Errorf("exec %s: %w", name, err))
		}
		return fmt.Errorf("exec %s: %w", name, err)
	}
	msg := fmt.Sprintf("exec %s: %s", name, exit.ProcessState) // "exit status 1" or "signal: killed"
	permanent := exit.ExitCode() >= 0 && slices.Contains(e.PermanentExitCodes, exit.ExitCode())
	if permanent {
		msg += " (a permanent exit code)"
	}
	if stderr != "" {
		msg += "; stderr: " + strconv.Quote(stderr)
	}
	if permanent {
		return processor.Permanent(&execError{msg: msg, err: exit})
	}
	return &execError{msg: msg, err: exit}
}

// execError is a failed run: its text says how it failed, without repeating
// the wrapped *exec.ExitError's.
type execError struct {
	msg string
	err error
}

func (e *execError) Error() string { return e.msg }
func (e *execError) Unwrap() error { return e.err }

func (e *Exec) environ(m *processor.Message, a stream.Alert) []string {
	env := os.Environ()
	for _, k := range slices.Sorted(maps.Keys(e.Env)) {
		env = append(env, k+"="+e.Env[k])
	}
	return append(env,
		"REACTOR_SUBJECT="+a.Subject,
		"REACTOR_ALERT_ID="+a.ID,
		"REACTOR_ALERT_NAME="+a.Name,
		"REACTOR_SEVERITY="+a.Severity,
		"REACTOR_DELIVERED="+strconv.Itoa(m.Delivered()),
	)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > t.max {
		p = p[len(p)-t.max:]
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return n, nil
}

// String returns the tail, trimmed, without a split character at its start.
func (t *tailBuffer) String() string {
	b := t.buf
	for len(b) > 0 && !utf8.RuneStart(b[0]) {
		b = b[1:]
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
}
