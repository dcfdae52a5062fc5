package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/reactor-alerts/reactor/processor"
)

func TestDecodeAlert(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	deep := strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1)
	tests := []struct {
		name    string
		subject string
		data    string
		want    Alert  // when wantErr is empty
		wantErr string // substring of the error
	}{
		{
			name:    "full JSON",
			subject: "alerts.disk_full",
			data: `{"id":"a1","name":"disk","severity":"CRITICAL","summary":"disk 95% on db-3",
				"labels":{"host":"db-3"},"annotations":{"runbook":"r"},"source":"prom","timestamp":"2026-01-02T03:04:05Z"}`,
			want: Alert{ID: "a1", Name: "disk", Subject: "alerts.disk_full", Severity: "critical", Summary: "disk 95% on db-3",
				Labels: map[string]string{"host": "db-3"}, Annotations: map[string]string{"runbook": "r"}, Source: "prom", Timestamp: ts},
		},
		{
			name:    "defaults from the subject",
			subject: "alerts.disk_full",
			data:    ` {"summary":"s"} `,
			want:    Alert{Name: "disk_full", Subject: "alerts.disk_full", Severity: "warning", Summary: "s"},
		},
		{
			name:    "the message subject overrides the payload's",
			subject: "alerts.b",
			data:    `{"subject":"alerts.a"}`,
			want:    Alert{Name: "b", Subject: "alerts.b", Severity: "warning"},
		},
		{
			name:    "subject without the alerts prefix",
			subject: "ops.pager",
			data:    `{}`,
			want:    Alert{Name: "ops.pager", Subject: "ops.pager", Severity: "warning"},
		},
		{
			name:    "plain text is the summary",
			subject: "alerts.terminator_detected",
			data:    "  bad robot detected\n",
			want:    Alert{Name: "terminator_detected", Subject: "alerts.terminator_detected", Severity: "warning", Summary: "bad robot detected"},
		},
		{
			name:    "byte order mark",
			subject: "alerts.x",
			data:    "\uFEFF{\"summary\":\"s\"}",
			want:    Alert{Name: "x", Subject: "alerts.x", Severity: "warning", Summary: "s"},
		},
		{
			name:    "brackets inside strings do not count as depth",
			subject: "alerts.x",
			data:    `{"summary":"` + strings.Repeat("[{", 50) + `"}`,
			want:    Alert{Name: "x", Subject: "alerts.x", Severity: "warning", Summary: strings.Repeat("[{", 50)},
		},
		{
			name:    "status and end from monitoring",
			subject: "alerts.x",
			data:    `{"status":"resolved","ends_at":"2026-01-02T03:04:05Z"}`,
			want:    Alert{Name: "x", Subject: "alerts.x", Severity: "warning", Status: StatusResolved, EndsAt: ts},
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
		{name: "too deep", subject: "alerts.x", data: deep, wantErr: fmt.Sprintf("decode alert: JSON nested deeper than %d levels", MaxDepth)},
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
			got, err := DecodeAlert(tt.subject, []byte(tt.data))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("DecodeAlert: %v", err)
				}
				assertAlert(t, got, tt.want)
				return
			}
			if err == nil {
				t.Fatalf("DecodeAlert = %+v, want error %q", got, tt.wantErr)
			}
			var perm *processor.PermanentError
			if !errors.As(err, &perm) {
				t.Errorf("error %q (%T) is not permanent", err, err)
			}
			if !errors.Is(err, ErrInvalidAlert) {
				t.Errorf("error %q does not wrap ErrInvalidAlert", err)
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
		a, err := DecodeAlert("alerts.x", []byte(data))
		if err != nil {
			t.Fatalf("DecodeAlert(%s): %v", data, err)
		}
		enc, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeAlert("alerts.x", enc)
		if err != nil {
			t.Fatalf("DecodeAlert(%s): %v", enc, err)
		}
		if !reflect.DeepEqual(a, again) {
			t.Errorf("%s: round trip through %s changed the alert:\n%#v\n%#v", data, enc, a, again)
		}
	}
}

func assertAlert(t *testing.T, got, want Alert) {
	t.Helper()
	if !got.Timestamp.Equal(want.Timestamp) {
		t.Errorf("Timestamp = %v, want %v", got.Timestamp, want.Timestamp)
	}
	if !got.EndsAt.Equal(want.EndsAt) {
		t.Errorf("EndsAt = %v, want %v", got.EndsAt, want.EndsAt)
	}
	got.Timestamp, want.Timestamp, got.EndsAt, want.EndsAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !maps.Equal(got.Labels, want.Labels) || !maps.Equal(got.Annotations, want.Annotations) {
		t.Errorf("labels/annotations = %v/%v, want %v/%v", got.Labels, got.Annotations, want.Labels, want.Annotations)
	}
	got.Labels, got.Annotations, want.Labels, want.Annotations = nil, nil, nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("alert = %+v\nwant    %+v", got, want)
	}
}

func TestDecodeFillsFromMessage(t *testing.T) {
	t.Parallel()
	stored := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hdr := nats.Header{}
	hdr.Set(nats.MsgIdHdr, "hdr-id")
	info := processor.MessageInfo{Stream: "ALERTS", Sequence: 7, Timestamp: stored}

	a, err := Decode(processor.NewMessage("alerts.x", []byte("text"), hdr, info))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "hdr-id" || !a.Timestamp.Equal(stored) {
		t.Errorf("ID, Timestamp = %q, %v; want the header's and the stream's", a.ID, a.Timestamp)
	}

	own := `{"id":"own-id","timestamp":"2025-12-31T23:00:00Z"}`
	a, err = Decode(processor.NewMessage("alerts.x", []byte(own), hdr, info))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "own-id" || a.Timestamp.Year() != 2025 {
		t.Errorf("ID, Timestamp = %q, %v; want the payload's", a.ID, a.Timestamp)
	}

	_, err = Decode(processor.NewMessage("alerts.x", []byte(`{"x":1}`), hdr, info))
	var perm *processor.PermanentError
	if !errors.As(err, &perm) {
		t.Errorf("Decode of a bad payload = %v, want a permanent error", err)
	}
}

func TestNewAlertValidates(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"terminator_detected", "alerts.terminator_detected"} {
		a := NewAlert(name, "bad robot")
		if err := a.Validate(); err != nil {
			t.Errorf("NewAlert(%q).Validate() = %v", name, err)
		}
		if a.Subject != "alerts.terminator_detected" || a.Name != "terminator_detected" {
			t.Errorf("NewAlert(%q): subject %q, name %q", name, a.Subject, a.Name)
		}
		if a.ID == "" || a.Timestamp.IsZero() || a.Severity != SeverityWarning {
			t.Errorf("NewAlert(%q) = %+v: want an ID, a time and severity warning", name, a)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := NewAlert("x", "s")
	tests := []struct {
		name    string
		edit    func(*Alert)
		wantErr string
	}{
		{"no subject", func(a *Alert) { a.Subject = "" }, "invalid alert: subject is required"},
		{"wildcard subject", func(a *Alert) { a.Subject = "alerts.>" }, `invalid alert: invalid subject "alerts.>"`},
		{"no name", func(a *Alert) { a.Name = "" }, "invalid alert: name is required"},
		{"upper-case severity", func(a *Alert) { a.Severity = "ERROR" }, `invalid alert: severity "ERROR" must be lower case`},
		{"unknown severity", func(a *Alert) { a.Severity = "fatal" }, `invalid alert: invalid severity "fatal"`},
		{"invalid UTF-8", func(a *Alert) { a.Summary = "\xff" }, "invalid alert: text is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := ok
			tt.edit(&a)
			err := a.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidAlert) {
				t.Errorf("Validate() = %v, want %q wrapping ErrInvalidAlert", err, tt.wantErr)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	t.Parallel()
	const n = 1000
	seen := make(map[string]bool, n)
	var ids []string
	for range n {
		id := NewID()
		if len(id) != 26 || strings.Trim(id, crockford) != "" {
			t.Fatalf("NewID() = %q: want 26 Crockford base32 characters", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	// The first 10 characters are the time in milliseconds: never decreasing.
	prefixes := make([]string, len(ids))
	for i, id := range ids {
		prefixes[i] = id[:10]
	}
	if !slices.IsSorted(prefixes) {
		t.Errorf("ID time prefixes are not sorted: %v ... %v", prefixes[0], prefixes[n-1])
	}
	before := NewID()[:10]
	if want := idTimePrefix(time.Now().Add(time.Hour)); before >= want {
		t.Errorf("time prefix %q is not before an hour later's %q", before, want)
	}
}

// idTimePrefix encodes t's milliseconds like the first 10 characters of NewID.
func idTimePrefix(t time.Time) string {
	ms := uint64(t.UnixMilli())
	var out [10]byte
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = crockford[ms&31]
		ms >>= 5
	}
	return string(out[:])
}

func ExampleDecodeAlert() {
	a, err := DecodeAlert("alerts.disk_full", []byte(`{"severity":"ERROR","summary":"disk 95% on db-3","labels":{"host":"db-3"}}`))
	fmt.Println(a.Name, a.Severity, a.Summary, a.Labels["host"], err)

	a, err = DecodeAlert("alerts.terminator_detected", []byte("bad robot detected"))
	fmt.Println(a.Name, a.Severity, a.Summary, err)

	_, err = DecodeAlert("alerts.disk_full", []byte(`{"summary":"x","sevirity":"error"}`))
	fmt.Println(err)
	// Output:
	// disk_full error disk 95% on db-3 db-3 <nil>
	// terminator_detected warning bad robot detected <nil>
	// permanent: decode alert: unknown field "sevirity" (want id, name, subject, severity, summary, labels, annotations, source, timestamp, status, ends_at)
}
