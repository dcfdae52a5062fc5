package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// message builds a delivery of data on subject, stored at fixedTime.
func message(subject, data string) *processor.Message {
	return processor.NewMessage(subject, []byte(data), nil,
		processor.MessageInfo{Stream: "ALERTS", Sequence: 7, Delivered: 2, Timestamp: fixedTime})
}

func TestPrintText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
		want string
	}{
		{
			name: "full",
			data: `{"id":"a1","severity":"critical","summary":"disk 95% on db-3","labels":{"zone":"eu west","host":"db-3","empty":""}}`,
			want: `2026-01-02T03:04:05Z CRITICAL alerts.disk_full disk 95% on db-3 id=a1 seq=7 delivered=2 empty="" host=db-3 zone="eu west"` + "\n",
		},
		{
			name: "plain text, severity padded, no id",
			data: "disk almost full",
			want: "2026-01-02T03:04:05Z WARNING  alerts.disk_full disk almost full id=- seq=7 delivered=2\n",
		},
		{
			name: "time in UTC, control characters escaped",
			data: `{"severity":"info","summary":"two\nlines \u001b[31mred","timestamp":"2026-01-02T05:04:05+02:00"}`,
			want: `2026-01-02T03:04:05Z INFO     alerts.disk_full two\nlines \x1b[31mred id=- seq=7 delivered=2` + "\n",
		},
		{
			name: "status after the delivery count",
			data: `{"id":"a1","summary":"disk ok","status":"resolved","labels":{"host":"db-3"}}`,
			want: "2026-01-02T03:04:05Z WARNING  alerts.disk_full disk ok id=a1 seq=7 delivered=2 status=resolved host=db-3\n",
		},
		{
			name: "no summary",
			data: `{"id":"with space"}`,
			want: `2026-01-02T03:04:05Z WARNING  alerts.disk_full - id="with space" seq=7 delivered=2` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			p := &Print{Out: &buf}
			if err := p.Process(context.Background(), message("alerts.disk_full", tt.data)); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("line:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestPrintJSON(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := &Print{Out: &buf, Format: FormatJSON}
	if err := p.Process(context.Background(), message("alerts.x", `{"id":"a1","summary":"<b>","labels":{"k":"v"}}`)); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("want exactly one line, got %q", line)
	}
	if !strings.Contains(line, `"summary":"<b>"`) {
		t.Errorf("HTML is escaped in %q", line)
	}
	var got printRecord
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatal(err)
	}
	want := printRecord{
		Alert: stream.Alert{ID: "a1", Name: "x", Subject: "alerts.x", Severity: "warning", Summary: "<b>",
			Labels: map[string]string{"k": "v"}, Timestamp: fixedTime},
		Stream: "ALERTS", Seq: 7, Delivered: 2,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("record = %+v\nwant     %+v", got, want)
	}
}

func TestPrintErrors(t *testing.T) {
	t.Parallel()
	var perm *processor.PermanentError

	err := (&Print{Out: &bytes.Buffer{}, Format: "yaml"}).Process(context.Background(), message("alerts.x", "s"))
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), `unknown format "yaml"`) {
		t.Errorf("unknown format: %v, want a permanent error", err)
	}

	var buf bytes.Buffer
	err = (&Print{Out: &buf}).Process(context.Background(), message("alerts.x", `{"bad":1}`))
	if !errors.As(err, &perm) || buf.Len() != 0 {
		t.Errorf("bad alert: %v and %q printed, want a permanent error and nothing", err, buf.String())
	}

	boom := errors.New("disk full")
	err = (&Print{Out: failingWriter{boom}}).Process(context.Background(), message("alerts.x", "s"))
	if !errors.Is(err, boom) || errors.As(err, &perm) {
		t.Errorf("write failure: %v, want a retryable error wrapping it", err)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// trickleWriter writes one byte at a time, yielding in between, and counts
// the Write calls that overlapped: unserialised writers interleave on it.
type trickleWriter struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	active   atomic.Int32
	overlaps atomic.Int32
}

func (w *trickleWriter) Write(p []byte) (int, error) {
	if w.active.Add(1) > 1 {
		w.overlaps.Add(1)
	}
	defer w.active.Add(-1)
	for _, b := range p {
		w.mu.Lock()
		w.buf.WriteByte(b)
		w.mu.Unlock()
		runtime.Gosched()
	}
	return len(p), nil
}

func TestPrintConcurrentLinesDoNotInterleave(t *testing.T) {
	t.Parallel()
	const goroutines, perG = 8, 25
	w := &trickleWriter{}
	shared := SyncWriter(w)
	// Two handlers on one writer, as Register builds them for two entries.
	printers := []*Print{{Out: shared}, {Out: shared}}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				data := fmt.Sprintf(`{"id":"g%d-%d","summary":"alert number %d from %d"}`, g, i, i, g)
				if err := printers[g%2].Process(context.Background(), message("alerts.x", data)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := w.overlaps.Load(); n != 0 {
		t.Errorf("%d writes overlapped", n)
	}
	lines := strings.Split(strings.TrimSuffix(w.buf.String(), "\n"), "\n")
	if len(lines) != goroutines*perG {
		t.Fatalf("%d lines, want %d", len(lines), goroutines*perG)
	}
	for _, line := range lines {
		var g, i, i2, g2 int
		_, err := fmt.Sscanf(line, "2026-01-02T03:04:05Z WARNING  alerts.x alert number %d from %d id=g%d-%d seq=7 delivered=2", &i, &g, &g2, &i2)
		if err != nil || g != g2 || i != i2 {
			t.Fatalf("mangled line %q", line)
		}
	}
}

func ExamplePrint() {
	p := &Print{} // prints to os.Stdout
	m := processor.NewMessage("alerts.disk_full",
		[]byte(`{"id":"01JGXYZ","severity":"error","summary":"disk 95% on db-3","labels":{"host":"db-3","mount":"/var"}}`),
		nil, processor.MessageInfo{Sequence: 42, Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	if err := p.Process(context.Background(), m); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 2026-01-02T03:04:05Z ERROR    alerts.disk_full disk 95% on db-3 id=01JGXYZ seq=42 delivered=1 host=db-3 mount=/var
}
