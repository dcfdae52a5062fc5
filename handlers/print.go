package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// Print output formats.
const (
	// FormatText writes one line per alert:
	//
	//	<RFC 3339 time> <SEVERITY> <subject> <summary> id=<id> seq=<seq> delivered=<n> [status=<status>] [k=v ...]
	//
	// The severity is upper case, padded to 8 columns; labels follow sorted
	// by name. Control characters in the summary are escaped, and a label
	// value with spaces, quotes or '=' is quoted, so that one alert is always
	// one line. A missing time, summary or id prints as "-".
	FormatText = "text"
	// FormatJSON writes one JSON object per line: the alert's fields plus
	// stream, seq and delivered.
	FormatJSON = "json"
)

// Print writes one line per alert to a writer: what `reactor run` shows in
// the terminal. Use it as a pointer (&Print{}); it is safe for concurrent use,
// and each alert is written with a single Write call under a mutex, so lines
// never interleave. Print values that share a writer must also share a lock:
// Register does that for the handlers it builds; Go users can wrap the writer
// with SyncWriter.
type Print struct {
	// Out receives the lines. Defaults to os.Stdout.
	Out io.Writer
	// Format is FormatText or FormatJSON. Defaults to FormatText.
	Format string

	mu sync.Mutex
}

// Process decodes the alert (a permanent error if it is invalid) and prints it.
func (p *Print) Process(ctx context.Context, m *processor.Message) error {
	return runAlone(ctx, p, m)
}

func (p *Print) kind() string { return "print" }

// run prints a; a print leaves no run record.
func (p *Print) run(_ context.Context, m *processor.Message, a stream.Alert, _ *Run) error {
	var buf bytes.Buffer
	switch p.Format {
	case "", FormatText:
		appendText(&buf, m, a)
	case FormatJSON:
		if err := appendJSON(&buf, m, a); err != nil {
			return fmt.Errorf("print alert: %w", err)
		}
	default:
		return processor.Permanent(fmt.Errorf("print alert: unknown format %q: want %q or %q", p.Format, FormatText, FormatJSON))
	}
	out := p.Out
	if out == nil {
		out = os.Stdout
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := out.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("print alert: %w", err)
	}
	return nil
}

func appendText(buf *bytes.Buffer, m *processor.Message, a stream.Alert) {
	ts := "-"
	if !a.Timestamp.IsZero() {
		ts = a.Timestamp.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(buf, "%s %-8s %s %s id=%s seq=%d delivered=%d",
		ts, strings.ToUpper(a.Severity), orDash(a.Subject), orDash(escapeControl(a.Summary)),
		quoteIfNeeded(orDash(a.ID)), m.Sequence(), m.Delivered())
	if a.Status != "" {
		buf.WriteString(" status=")
		buf.WriteString(quoteIfNeeded(a.Status))
	}
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		buf.WriteByte(' ')
		buf.WriteString(quoteIfNeeded(k))
		buf.WriteByte('=')
		buf.WriteString(quoteIfNeeded(a.Labels[k]))
	}
	buf.WriteByte('\n')
}

// printRecord is one line of FormatJSON output.
type printRecord struct {
	stream.Alert
	Stream    string `json:"stream,omitempty"`
	Seq       uint64 `json:"seq"`
	Delivered int    `json:"delivered"`
}

func appendJSON(buf *bytes.Buffer, m *processor.Message, a stream.Alert) error {
	enc := json.NewEncoder(buf) // Encode ends the object with a newline
	enc.SetEscapeHTML(false)
	return enc.Encode(printRecord{Alert: a, Stream: m.Stream(), Seq: m.Sequence(), Delivered: m.Delivered()})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// escapeControl replaces control characters (newlines, tabs, terminal escape
// sequences) with Go escapes, so the text stays on one line and cannot
// drive the terminal.
func escapeControl(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// quoteIfNeeded quotes s when it would not read back as one k=v token.
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' || r == '=' || r == utf8.RuneError
	}) {
		return strconv.Quote(s)
	}
	return s
}

// SyncWriter returns a writer that serialises Write calls to w with a mutex,
// for several Print handlers (or other writers) that share one output.
func SyncWriter(w io.Writer) io.Writer {
	if sw, ok := w.(*syncWriter); ok {
		return sw
	}
	return &syncWriter{w: w}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
