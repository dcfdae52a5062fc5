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

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// ExecTimeoutDefault bounds one run of an Exec command unless Exec.Timeout
// says otherwise.
const ExecTimeoutDefault = 30 * time.Second

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
// Each element of Command and each value of Env is a Go text/template over
// the alert (see TemplateData): []string{"/opt/restart", "{{.Labels.service}}"}
// passes the alert's service label as one argument, whatever it holds.
// Templates never go through a shell; to use the alert in a shell script,
// pass it as an argument ([]string{"sh", "-c", `restart "$1"`, "sh",
// "{{.Labels.service}}"}), never inside the script, where a label holding
// "; rm -rf /" would run. A template that fails on an alert is a permanent
// error.
//
// The command inherits reactor's environment plus Env, and these variables:
// REACTOR_SUBJECT, REACTOR_ALERT_ID, REACTOR_ALERT_NAME, REACTOR_SEVERITY and
// REACTOR_DELIVERED (1 on the first attempt; a command that must not repeat
// its effect can check it). The end of its standard output and error goes
// into the run record of a rule entry's exec (see Run).
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
	// Command is the program and its arguments, each a template. Required.
	Command []string
	// Env adds variables to the command's environment, over reactor's own;
	// each value is a template.
	Env map[string]string
	// Dir is the command's working directory. Defaults to reactor's.
	Dir string
	// Timeout bounds each run. Defaults to ExecTimeoutDefault (30s).
	Timeout time.Duration
	// PermanentExitCodes are exit statuses that mean "retrying will not
	// help": the alert is dead-lettered at once. Defaults to none.
	PermanentExitCodes []int
	// ConsoleURL is the web console's public URL, for the templates'
	// .ConsoleURL. Defaults to none.
	ConsoleURL string
	// Logger receives a debug record per run, and a warning when the
	// command's process group cannot be handed to the watcher that kills
	// it if reactor dies. Defaults to discarding.
	Logger *slog.Logger

	compiled compiled[execTemplates]
}

// execTemplates is an Exec's command and env, parsed.
type execTemplates struct {
	argv []*alertTemplate
	env  []namedTemplate // sorted by name
}

// namedTemplate is one value of a map of templates (env, headers).
type namedTemplate struct {
	name string
	t    *alertTemplate
}

// Process decodes the alert (a permanent error if it is invalid) and runs
// the command.
func (e *Exec) Process(ctx context.Context, m *processor.Message) error {
	return runAlone(ctx, e, m)
}

func (e *Exec) kind() string { return "exec" }

func (e *Exec) validate() error {
	_, err := e.compiled.get(e.compile)
	return err
}

// compile checks e and parses its templates, rendering each on a sample
// alert.
func (e *Exec) compile() (*execTemplates, error) {
	if len(e.Command) == 0 || e.Command[0] == "" {
		return nil, errors.New("exec: command is required")
	}
	if e.Timeout < 0 {
		return nil, fmt.Errorf("exec: negative timeout %s", e.Timeout)
	}
	t := &execTemplates{}
	for i, arg := range e.Command {
		x, err := parseExecArg(i, arg)
		if err != nil {
			return nil, fmt.Errorf("exec: %w", err)
		}
		t.argv = append(t.argv, x)
	}
	for _, k := range slices.Sorted(maps.Keys(e.Env)) {
		x, err := parseExecEnv(k, e.Env[k])
		if err != nil {
			return nil, fmt.Errorf("exec: %w", err)
		}
		t.env = append(t.env, namedTemplate{name: k, t: x})
	}
	return t, nil
}

// parseExecArg parses and checks element i of a command.
func parseExecArg(i int, arg string) (*alertTemplate, error) {
	what := fmt.Sprintf("command[%d]", i)
	t, err := parseTemplate(what, arg)
	if err == nil {
		_, err = t.checkSample(t.sampleData(false), maxFieldLen)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t, nil
}

// parseExecEnv parses and checks the value of variable k; errors never
// repeat it (it may hold a secret).
func parseExecEnv(k, v string) (*alertTemplate, error) {
	what := "env." + k
	t, err := parseTemplate(what, v)
	if err == nil {
		_, err = t.checkSample(t.sampleData(false), maxFieldLen)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t, nil
}

// render renders the command line and the added variables ("K=V") for the
// alert of data. A failure is permanent: the alert will not change.
func (t *execTemplates) render(name string, data TemplateData) (argv, env []string, err error) {
	for i, x := range t.argv {
		s, err := x.render(data, maxFieldLen)
		if err == nil && strings.IndexByte(s, 0) >= 0 {
			err = errors.New("renders a NUL byte, which no argument can hold")
		}
		if err != nil {
			return nil, nil, processor.Permanent(fmt.Errorf("exec %s: command[%d]: %w", name, i, err))
		}
		argv = append(argv, s)
	}
	for _, x := range t.env {
		s, err := x.t.render(data, maxFieldLen)
		if err == nil && strings.IndexByte(s, 0) >= 0 {
			err = errors.New("renders a NUL byte, which no variable can hold")
		}
		if err != nil {
			return nil, nil, processor.Permanent(fmt.Errorf("exec %s: env.%s: %w", name, x.name, err))
		}
		env = append(env, x.name+"="+s)
	}
	return argv, env, nil
}

// run runs the command for a, and notes in r the command line, the exit
// code and the end of stdout and stderr.
func (e *Exec) run(ctx context.Context, m *processor.Message, a stream.Alert, r *Run) error {
	tmpl, err := e.compiled.get(e.compile)
	if err != nil {
		return processor.Permanent(err)
	}
	// Errors name the program as written, never its arguments: they may
	// hold secrets.
	name := e.Command[0]
	argv, added, err := tmpl.render(name, newTemplateData(m, a, e.ConsoleURL))
	if err != nil {
		return err
	}
	r.Command = argv
	name = argv[0]
	payload, err := json.Marshal(a)
	if err != nil {
		return processor.Permanent(fmt.Errorf("exec %s: encode alert: %w", name, err))
	}
	timeout := e.Timeout
	if timeout == 0 {
		timeout = ExecTimeoutDefault
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout,
		fmt.Errorf("exec %s: timeout %s: %w", name, timeout, context.DeadlineExceeded))
	defer cancel()

	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = e.Dir
	cmd.Stdin = bytes.NewReader(payload)
	stdout, stderr := newTailBuffer(r.outputLimit), newTailBuffer(r.outputLimit)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = environ(m, a, added)
	cmd.WaitDelay = execWaitDelay

	start := time.Now()
	err = run(cmd, e.Logger)
	if cmd.ProcessState != nil {
		code := cmd.ProcessState.ExitCode()
		r.ExitCode = &code
	}
	r.Stdout, r.Stderr = stdout.output(), stderr.output()
	if l := e.Logger; l != nil && l.Enabled(ctx, slog.LevelDebug) {
		l.LogAttrs(ctx, slog.LevelDebug, "exec done",
			slog.String("command", name), slog.String("subject", m.Subject()),
			slog.Uint64("seq", m.Sequence()), slog.Duration("duration", time.Since(start)),
			slog.Int("exit_code", cmd.ProcessState.ExitCode()))
	}
	return e.classify(ctx, name, err, stderr.tail(stderrTail))
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

// environ is reactor's environment, the variables added ("K=V") and the
// alert's.
func environ(m *processor.Message, a stream.Alert, added []string) []string {
	env := append(os.Environ(), added...)
	return append(env,
		"REACTOR_SUBJECT="+a.Subject,
		"REACTOR_ALERT_ID="+a.ID,
		"REACTOR_ALERT_NAME="+a.Name,
		"REACTOR_SEVERITY="+a.Severity,
		"REACTOR_DELIVERED="+strconv.Itoa(m.Delivered()),
	)
}
