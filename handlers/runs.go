package handlers

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dustin/go-humanize"
)

// Run is the record of one attempt of one action of a rule entry (every
// action but print): what reactor ran for an alert, and what came of it.
type Run struct {
	// ID identifies the run: a ULID.
	ID string `json:"id"`
	// Group is the consumer group whose process ran it.
	Group string `json:"group"`
	// Entry is the rule entry whose action it is.
	Entry string `json:"entry"`
	// Action is the action's kind (exec, webhook, ...) and ActionIndex its
	// place among the entry's actions, from 0.
	Action      string `json:"action"`
	ActionIndex int    `json:"action_index"`
	// AlertStream, AlertSeq and AlertID say which alert it acted on, and
	// Subject where it was published.
	AlertStream string `json:"alert_stream"`
	AlertSeq    uint64 `json:"alert_seq"`
	AlertID     string `json:"alert_id,omitempty"`
	Subject     string `json:"subject"`
	// Delivered is the alert's delivery the run belongs to: 1 on the first
	// attempt.
	Delivered int `json:"delivered"`
	// Started is when the action started; DurationSeconds how long it took.
	Started         time.Time `json:"started"`
	DurationSeconds float64   `json:"duration_seconds"`
	// Outcome is RunOK, RunFailed, RunPermanent, RunTimeout or
	// RunCanceled; RunSuppressed for an alert the entry decided not to act
	// on (no action ran: Action is empty, Error says why).
	Outcome string `json:"outcome"`
	// Error is why it failed, as the dead letter and the log say it.
	Error string `json:"error,omitempty"`
	// Command is the command line as run (exec); URL the URL called
	// (webhook and the notifiers); secrets redacted.
	Command []string `json:"command,omitempty"`
	URL     string   `json:"url,omitempty"`
	// ExitCode is the command's exit status (exec; -1 when killed by a
	// signal); HTTPStatus the answer's status (webhook and the notifiers).
	ExitCode   *int `json:"exit_code,omitempty"`
	HTTPStatus int  `json:"http_status,omitempty"`
	// Stdout and Stderr are what the command printed (exec); Body the
	// answer's body (webhook and the notifiers).
	Stdout *Output `json:"stdout,omitempty"`
	Stderr *Output `json:"stderr,omitempty"`
	Body   *Output `json:"body,omitempty"`
	// Host and PID name the process that ran it.
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Rerun reports a run asked for by `reactor runs rerun`: RerunSeq is
	// the alert stream sequence of the copy that carried the request.
	Rerun    bool   `json:"rerun,omitempty"`
	RerunSeq uint64 `json:"rerun_seq,omitempty"`
	// Replay reports a run of `reactor replay`, which runs past alerts
	// through the rules again outside any group's consumer.
	Replay bool `json:"replay,omitempty"`
	// Seq is the record's sequence in RunsStream, when read back.
	Seq uint64 `json:"-"`

	// outputLimit bounds each output kept; set by the chain.
	outputLimit int
	// traceparent is the alert's: the record carries it, in the alert's
	// trace.
	traceparent string
}

// Result is the run's exit code ("exit 1") or HTTP status ("HTTP 503"), or
// "" when it has neither.
func (r Run) Result() string {
	switch {
	case r.ExitCode != nil:
		return "exit " + strconv.Itoa(*r.ExitCode)
	case r.HTTPStatus != 0:
		return "HTTP " + strconv.Itoa(r.HTTPStatus)
	}
	return ""
}

// Outcomes of a Run.
const (
	RunOK        = "ok"
	RunFailed    = "failed"    // retried, or dead-lettered after the last delivery
	RunPermanent = "permanent" // dead-lettered at once
	RunTimeout   = "timeout"
	RunCanceled  = "canceled" // reactor stopped while it ran
	// RunSuppressed records a repeat the entry did not act on.
	RunSuppressed = "suppressed"
)

// RunsConfig is what the run records keep, and for how long.
type RunsConfig struct {
	// Output bounds each output a record keeps (stdout, stderr, an
	// answer's body): its last bytes. Defaults to RunOutputDefault; at most
	// RunOutputMax, so that a record fits a message.
	Output int64 `yaml:"output"`
	// MaxBytes bounds RunsStream; the oldest records go first. Defaults to
	// RunsMaxBytesDefault.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxAge bounds how long records are kept. Defaults to the alert
	// stream's max age.
	MaxAge time.Duration `yaml:"max_age"`
}

// RunOutputMax is the largest RunsConfig.Output: a record with two such
// outputs stays well within nats-server's default 1 MiB max payload.
const RunOutputMax = 256 << 10

func (c RunsConfig) validate() error {
	switch {
	case c.Output < 0 || c.Output > RunOutputMax:
		return fmt.Errorf("runs.output %d: want 1 to %d bytes (%s)", c.Output, RunOutputMax, humanize.IBytes(RunOutputMax))
	case c.MaxBytes < 0:
		return fmt.Errorf("runs.max_bytes %d: want a positive size", c.MaxBytes)
	case c.MaxAge < 0:
		return fmt.Errorf("runs.max_age %s: want a positive duration", c.MaxAge)
	}
	return nil
}

// RunOutputDefault is how much of each output (stdout, stderr, an answer's
// body) a run record keeps: its last bytes.
const RunOutputDefault = 16 << 10

// Output is the end of what an action printed or received.
type Output struct {
	// Text is the output, or its last bytes when Truncated (cut at a
	// character boundary; invalid UTF-8 replaced).
	Text string `json:"text"`
	// Bytes is the size of the whole output.
	Bytes int64 `json:"bytes"`
	// Truncated reports that Text holds only the end of it.
	Truncated bool `json:"truncated,omitempty"`
}

// tailBuffer keeps the last max bytes written to it, and counts them all.
type tailBuffer struct {
	max   int
	buf   []byte
	total int64
}

func newTailBuffer(max int) *tailBuffer {
	if max <= 0 {
		max = RunOutputDefault
	}
	return &tailBuffer{max: max}
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	t.total += int64(n)
	if len(p) > t.max {
		p = p[len(p)-t.max:]
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return n, nil
}

// output is what the buffer kept, for a Run; nil if nothing was written.
func (t *tailBuffer) output() *Output {
	if t.total == 0 {
		return nil
	}
	b := t.buf
	for len(b) > 0 && !utf8.RuneStart(b[0]) {
		b = b[1:]
	}
	return &Output{Text: strings.ToValidUTF8(string(b), "\uFFFD"), Bytes: t.total, Truncated: t.total > int64(len(b))}
}

// tail is the last n bytes of the output, trimmed, for an error message.
func (t *tailBuffer) tail(n int) string {
	b := t.buf
	if len(b) > n {
		b = b[len(b)-n:]
	}
	for len(b) > 0 && !utf8.RuneStart(b[0]) {
		b = b[1:]
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
}
