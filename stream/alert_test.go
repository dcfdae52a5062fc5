package stream_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestDecodeAlert(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	deep := strings.Repeat(`{"a":`, stream.MaxDepth+1) + "1" + strings.Repeat("}", stream.MaxDepth+1)
	tests := []struct {
		name    string
		subject string
		data    string
		want    stream.Alert // when wantErr is empty
		wantErr string       // substring of the error
	}{
		{
			name:    "full JSON",
			subject: "alerts.disk_full",
			data: `{"id":"a1","name":"disk","severity":"CRITICAL","summary":"disk 95% on db-3",
				"labels":{"host":"db-3"},"annotations":{"runbook":"r"},"source":"prom","timestamp":"2026-01-02T03:04:05Z"}`,
			want: stream.Alert{ID: "a1", Name: "disk", Subject: "alerts.disk_full", Severity: "critical", Summary: "disk 95% on db-3",
				Labels: map[string]string{"host": "db-3"}, Annotations: map[string]string{"runbook": "r"}, Source: "prom", Timestamp: ts},
		},
		{
			name:    "defaults from the subject",
			subject: "alerts.disk_full",
			data:    ` {"summary":"s"} `,
			want:    stream.Alert{Name: "disk_full", Subject: "alerts.disk_full", Severity: "warning", Summary: "s"},
		},
		{
			name:    "the message subject overrides the payload's",
			subject: "alerts.b",
			data:    `{"subject":"alerts.a"}`,
			want:    stream.Alert{Name: "b", Subject: "alerts.b", Severity: "warning"},
		},
		{
			name:    "subject without the alerts prefix",
			subject: "ops.pager",
			data:    `{}`,
			want:    stream.Alert{Name: "ops.pager", Subject: "ops.pager", Severity: "warning"},
		},
		{
			name:    "plain text is the summary",
			subject: "alerts.terminator_detected",
			data:    "  bad robot detected\n",
			want:    stream.Alert{Name: "terminator_detected", Subject: "alerts.terminator_detected", Severity: "warning", Summary: "bad robot detected"},
		},
		{
			name:    "byte order mark",
			subject: "alerts.x",
			data:    "\uFEFF{\"summary\":\"s\"}",
			want:    stream.Alert{Name: "x", Subject: "alerts.x", Severity: "warning", Summary: "s"},
		},
		{
			name:    "brackets inside strings do not count as depth",
			subject: "alerts.x",
			data:    `{"summary":"` + strings.Repeat("[{", 50) + `"}`,
			want:    stream.Alert{Name: "x", Subject: "alerts.x", Severity: "warning", Summary: strings.Repeat("[{", 50)},
		},
		{
			name:    "status and end from monitoring",
			subject: "alerts.x",
			data:    `{"status":"resolved","ends_at":"2026-01-02T03:04:05Z"}`,
			want:    stream.Alert{Name: "x", Subject: "alerts.x", Severity: "warning", Status: stream.StatusResolved, EndsAt: ts},
		},
		{name: "bad status", subject: "alerts.x", data: `{"status":"pending"}`, wantErr: `decode alert: invalid status "pending": want firing or resolved`},
		{name: "empty", subject: "alerts.x", data: "", wantErr: "decode alert: empty payload"},
		{name: "white space only", subject: "alerts.x", data: " \n\t", wantErr: "decode alert: empty payload"},
		{name: "invalid UTF-8", subject: "alerts.x", data: "disk \xff\xfe full", wantErr: "decode alert: payload is not valid UTF-8"},
		{name: "truncated JSON", subject: "alerts.x", data: `{"summary":"x"`, wantErr: "decode alert: malformed JSON: unexpected end of input"},
		{name: "malformed JSON", subject: "alerts.x", data: `{"summary" "x"}`, wantErr: "decode alert: malformed JSON at byte 12: invalid character"},
		{name: "unknown field", subject: "alerts.x", data: `{"summary":"x","foo":1}`, wantErr: `decode alert: unknown field "foo" (want id, name, subject, severity, summary, labels, annotations, source, timestamp, status, ends_at)`},
		{name: "key in another case", subject: "alerts.x", data: `{"nAme":"x"}`, wantErr: `decode alert: unknown field "nAme" (keys are case-sensitive: did you mean "name"?)`},
		{name: "key in upper case", subject: "alerts.x", data: `{"SUMMARY":"x"}`, wantErr: `decode alert: unknown field "SUMMARY"`},
		{name: "key folded by Unicode", subject: "alerts.x", data: `{"\u017fummary":"x"}`, wantErr: `decode alert: unknown field "ſummary"`},
		{name: "key given twice", subject: "alerts.x", data: `{"summary":"x","summary":"y"}`, wantErr: `decode alert: field "summary" given twice`},
		{name: "wrong type", subject: "alerts.x", data: `{"severity":3}`, wantErr: `decode alert: field "severity": cannot use a JSON number as string`},
		{name: "wrong label type", subject: "alerts.x", data: `{"labels":{"host":1}}`, wantErr: `decode alert: field "labels": cannot use a JSON number as string`},
		{name: "bad timestamp", subject: "alerts.x", data: `{"timestamp":"yesterday"}`, wantErr: `decode alert: field "timestamp": want an RFC 3339 time`},
		{name: "numeric timestamp", subject: "alerts.x", data: `{"timestamp":1700000000}`, wantErr: `decode alert: field "timestamp": want an RFC 3339 time`},
		{name: "too deep", subject: "alerts.x", data: deep, wantErr: fmt.Sprintf("decode alert: JSON nested deeper than %d levels", stream.MaxDepth)},
		{name: "trailing garbage", subject: "alerts.x", data: `{"summary":"x"} x`, wantErr: "decode alert: trailing data after the JSON object"},
		{name: "two objects", subject: "alerts.x", data: `{"summary":"x"}{"summary":"y"}`, wantErr: "decode alert: trailing data after the JSON object"},
		{name: "bad severity", subject: "alerts.x", data: `{"severity":"urgent"}`, wantErr: `decode alert: invalid severity "urgent": want info, warning, error or critical`},
		{name: "empty label name", subject: "alerts.x", data: `{"labels":{"":"v"}}`, wantErr: "decode alert: empty label name"},
		{name: "wildcard subject", subject: "alerts.*", data: `{}`, wantErr: `decode alert: invalid subject "alerts.*"`},
		{name: "no subject at all", subject: "", data: `{"summary":"x"}`, wantErr: "decode alert: subject is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := stream.DecodeAlert(tt.subject, []byte(tt.data))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("stream.DecodeAlert: %v", err)
				}
				streamtest.AssertAlert(t, got, tt.want)
				return
			}
			if err == nil {
				t.Fatalf("stream.DecodeAlert = %+v, want error %q", got, tt.wantErr)
			}
			if !errors.Is(err, stream.ErrInvalidAlert) {
				t.Errorf("error %q does not wrap stream.ErrInvalidAlert", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestAlertJSONRoundTrip: an alert decoded and encoded again decodes to the
// same alert, empty maps included (a seed of FuzzDecodeAlert too).
func TestAlertJSONRoundTrip(t *testing.T) {
	t.Parallel()
	for _, data := range []string{
		`{"id":"a1","name":"disk","severity":"critical","summary":"s","labels":{},"annotations":{}}`,
		`{"labels":{"host":"db-3"},"annotations":null}`,
		`{}`,
	} {
		a, err := stream.DecodeAlert("alerts.x", []byte(data))
		if err != nil {
			t.Fatalf("stream.DecodeAlert(%s): %v", data, err)
		}
		enc, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		again, err := stream.DecodeAlert("alerts.x", enc)
		if err != nil {
			t.Fatalf("stream.DecodeAlert(%s): %v", enc, err)
		}
		if !reflect.DeepEqual(a, again) {
			t.Errorf("%s: round trip through %s changed the alert:\n%#v\n%#v", data, enc, a, again)
		}
	}
}

func TestNewAlertValidates(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"terminator_detected", "alerts.terminator_detected"} {
		a := stream.NewAlert(name, "bad robot")
		if err := a.Validate(); err != nil {
			t.Errorf("stream.NewAlert(%q).Validate() = %v", name, err)
		}
		if a.Subject != "alerts.terminator_detected" || a.Name != "terminator_detected" {
			t.Errorf("stream.NewAlert(%q): subject %q, name %q", name, a.Subject, a.Name)
		}
		if a.ID == "" || a.Timestamp.IsZero() || a.Severity != stream.SeverityWarning {
			t.Errorf("stream.NewAlert(%q) = %+v: want an ID, a time and severity warning", name, a)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := stream.NewAlert("x", "s")
	tests := []struct {
		name    string
		edit    func(*stream.Alert)
		wantErr string
	}{
		{"no subject", func(a *stream.Alert) { a.Subject = "" }, "invalid alert: subject is required"},
		{"wildcard subject", func(a *stream.Alert) { a.Subject = "alerts.>" }, `invalid alert: invalid subject "alerts.>"`},
		{"no name", func(a *stream.Alert) { a.Name = "" }, "invalid alert: name is required"},
		{"upper-case severity", func(a *stream.Alert) { a.Severity = "ERROR" }, `invalid alert: severity "ERROR" must be lower case`},
		{"unknown severity", func(a *stream.Alert) { a.Severity = "fatal" }, `invalid alert: invalid severity "fatal"`},
		{"invalid UTF-8", func(a *stream.Alert) { a.Summary = "\xff" }, "invalid alert: text is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := ok
			tt.edit(&a)
			err := a.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, stream.ErrInvalidAlert) {
				t.Errorf("Validate() = %v, want %q wrapping stream.ErrInvalidAlert", err, tt.wantErr)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	t.Parallel()
	const n = 1000
	seen := make(map[string]bool, n)
	before := time.Now().Add(-time.Millisecond)
	for range n {
		id := stream.NewID()
		u, err := ulid.ParseStrict(id)
		if err != nil {
			t.Fatalf("stream.NewID() = %q: not a ULID: %v", id, err)
		}
		if at := ulid.Time(u.Time()); at.Before(before.Truncate(time.Millisecond)) || at.After(time.Now()) {
			t.Fatalf("stream.NewID() = %q holds %v, want about now", id, at)
		}
		if seen[id] {
			t.Fatalf("stream.NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func ExampleDecodeAlert() {
	a, err := stream.DecodeAlert("alerts.disk_full", []byte(`{"severity":"ERROR","summary":"disk 95% on db-3","labels":{"host":"db-3"}}`))
	fmt.Println(a.Name, a.Severity, a.Summary, a.Labels["host"], err)

	a, err = stream.DecodeAlert("alerts.terminator_detected", []byte("bad robot detected"))
	fmt.Println(a.Name, a.Severity, a.Summary, err)

	_, err = stream.DecodeAlert("alerts.disk_full", []byte(`{"summary":"x","sevirity":"error"}`))
	fmt.Println(err)
	// Output:
	// disk_full error disk 95% on db-3 db-3 <nil>
	// terminator_detected warning bad robot detected <nil>
	// decode alert: unknown field "sevirity" (want id, name, subject, severity, summary, labels, annotations, source, timestamp, status, ends_at)
}

func TestReadAlert(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data, defaultSubject string
		wantSubject, wantErr       string
	}{
		{name: "subject", data: `{"subject":"alerts.db.disk","summary":"s"}`, wantSubject: "alerts.db.disk"},
		{name: "name", data: `{"name":"disk_full"}`, wantSubject: "alerts.disk_full"},
		{name: "name with the prefix", data: `{"name":"alerts.disk_full"}`, wantSubject: "alerts.disk_full"},
		{name: "default subject", data: `{"summary":"s"}`, defaultSubject: "alerts.pager", wantSubject: "alerts.pager"},
		{name: "subject over default", data: `{"subject":"alerts.x"}`, defaultSubject: "alerts.pager", wantSubject: "alerts.x"},
		{name: "neither", data: `{"summary":"s"}`, wantErr: `alert has neither "subject" nor "name"`},
		{name: "outside alerts.", data: `{"subject":"ops.x"}`, wantErr: `subject "ops.x": want alerts.<name>`},
		{name: "not an object", data: `"disk full"`, wantErr: "want a JSON object"},
		{name: "malformed", data: `{"name":`, defaultSubject: "alerts.x", wantErr: "malformed JSON"},
		{name: "unknown key", data: `{"name":"x","Severity":"error"}`, wantErr: `keys are case-sensitive: did you mean "severity"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := stream.ReadAlert([]byte(tt.data), tt.defaultSubject)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, stream.ErrInvalidAlert) {
					t.Fatalf("ReadAlert = %+v, %v; want an ErrInvalidAlert saying %q", a, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadAlert: %v", err)
			}
			if a.Subject != tt.wantSubject || a.ID == "" || a.Timestamp.IsZero() {
				t.Errorf("ReadAlert = %+v: want subject %s, a new id and the current time", a, tt.wantSubject)
			}
		})
	}
}

func TestAlertMsg(t *testing.T) {
	t.Parallel()
	a := stream.NewAlert("disk_full", "disk 95% on db-3")
	a.Labels = map[string]string{"host": "db-3"}
	msg, err := a.Msg(0)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "alerts.disk_full" || msg.Header.Get(nats.MsgIdHdr) != a.ID {
		t.Errorf("message on %q with id %q, want alerts.disk_full and %q", msg.Subject, msg.Header.Get(nats.MsgIdHdr), a.ID)
	}
	back, err := stream.DecodeAlert(msg.Subject, msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	streamtest.AssertAlert(t, back, a)

	if _, err := a.Msg(int64(len(msg.Data) - 1)); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("too large: %d bytes of JSON, the server accepts at most %d", len(msg.Data), len(msg.Data)-1)) {
		t.Errorf("Msg over the max payload = %v, want the sizes", err)
	}
	noID := a
	noID.ID = ""
	if _, err := noID.Msg(0); err == nil || !errors.Is(err, stream.ErrInvalidAlert) {
		t.Errorf("Msg without an id = %v, want ErrInvalidAlert", err)
	}
	bad := a
	bad.Subject = "alerts.>"
	if _, err := bad.Msg(0); err == nil || !errors.Is(err, stream.ErrInvalidAlert) {
		t.Errorf("Msg on a wildcard subject = %v, want ErrInvalidAlert", err)
	}
}
