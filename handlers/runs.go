package handlers

import (
	"strings"
	"time"
	"unicode/utf8"
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
	// Outcome is RunOK, RunFailed, RunPermanent, RunTimeout or RunCanceled.
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

	// outputLimit bounds each output kept; set by the chain.
	outputLimit int
}

// Outcomes of a Run.
const (
	RunOK        = "ok"
	RunFailed    = "failed"    // retried, or dead-lettered after the last delivery
	RunPermanent = "permanent" // dead-lettered at once
	RunTimeout   = "timeout"
	RunCanceled  = "canceled" // reactor stopped while it ran
)

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
