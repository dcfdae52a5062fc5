package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"

	"github.com/reactor-alerts/reactor/stream/internal/strictjson"
)

// The alert, in one place: the type publishers send and handlers see, its
// validation, its decoding from a message's payload and its encoding into a
// message. Every producer (send, HTTP ingest, the bench, Go programs) and
// every consumer (the handlers, replay, the console) goes through here.

// SubjectPrefix is the subject prefix of alerts: an alert named "disk_full"
// is published on "alerts.disk_full".
const SubjectPrefix = "alerts."

// Severities, from least to most urgent. Alert.Severity holds one of them.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityError    = "error"
	SeverityCritical = "critical"
)

// Statuses of an alert from monitoring: Alert.Status holds one of them, or
// nothing for an alert that only fires (what `reactor send` publishes).
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// ErrInvalidAlert is wrapped by every error that rejects an alert, from
// DecodeAlert, ReadAlert, Alert.Validate and Alert.Msg.
var ErrInvalidAlert = errors.New("stream: invalid alert")

// Alert is one alert as publishers send it and handlers see it. On the wire
// it is a JSON object with the snake_case keys below, spelled exactly (a key
// in another case, like "Name", is an unknown field); a bare text payload is
// an alert with that Summary.
type Alert struct {
	// ID identifies the alert; the publisher also sends it as the
	// Nats-Msg-Id header, so a retried publish is stored once.
	ID string `json:"id,omitempty"`
	// Name is the alert's name, e.g. "disk_full". Defaults to the subject
	// without the "alerts." prefix.
	Name string `json:"name,omitempty"`
	// Subject is the subject the alert was published on, e.g.
	// "alerts.disk_full".
	Subject string `json:"subject,omitempty"`
	// Severity is one of info, warning, error, critical. Defaults to warning.
	Severity string `json:"severity,omitempty"`
	// Summary is the one-line human description.
	Summary string `json:"summary,omitempty"`
	// Labels identify the alert's source, e.g. host=db-3.
	Labels map[string]string `json:"labels,omitzero"`
	// Annotations carry extra information (runbook URL, description).
	Annotations map[string]string `json:"annotations,omitzero"`
	// Source names the system that fired the alert.
	Source string `json:"source,omitempty"`
	// Timestamp is when the alert fired. Defaults to when the stream stored
	// the message.
	Timestamp time.Time `json:"timestamp,omitzero"`
	// Status is StatusFiring or StatusResolved for alerts from monitoring
	// that resolves them (Alertmanager, Grafana). Defaults to empty: an
	// alert that fires and needs no resolution.
	Status string `json:"status,omitempty"`
	// EndsAt is when a resolved alert stopped firing (Alertmanager's
	// endsAt). Defaults to the zero time.
	EndsAt time.Time `json:"ends_at,omitzero"`
}

// MaxDepth is the deepest nesting of JSON objects and arrays Decode accepts.
// An alert needs two levels (the object and its labels); the bound rejects
// abusive payloads before the JSON decoder walks them.
const MaxDepth = 32

// NewAlert returns an alert ready to publish: a fresh ID, subject
// "alerts.<name>", severity warning and the current time. A name that already
// starts with "alerts." is taken as the subject.
func NewAlert(name, summary string) Alert {
	name, _ = strings.CutPrefix(name, SubjectPrefix)
	return Alert{
		ID:        NewID(),
		Name:      name,
		Subject:   SubjectPrefix + name,
		Severity:  SeverityWarning,
		Summary:   summary,
		Timestamp: time.Now().UTC(),
	}
}

// Validate reports whether a is fit to publish and to handle: a valid subject
// (no wildcards), a name, a known lower-case severity (empty means warning),
// a status that is empty, firing or resolved, non-empty label keys and valid
// UTF-8 text. An ID is not required: alerts published by other
// tools may lack one.
func (a Alert) Validate() error {
	if err := a.validate(); err != nil {
		return &alertError{op: "invalid alert", err: err}
	}
	return nil
}

func (a Alert) validate() error {
	switch {
	case a.Subject == "":
		return errors.New("subject is required")
	case !publishable(a.Subject):
		return fmt.Errorf("invalid subject %q: want dot-separated tokens without wildcards or spaces, e.g. alerts.disk_full", a.Subject)
	case a.Name == "":
		return errors.New("name is required")
	}
	if _, err := parseSeverity(a.Severity); err != nil {
		return err
	}
	switch a.Status {
	case "", StatusFiring, StatusResolved:
	default:
		return fmt.Errorf("invalid status %q: want %s or %s", a.Status, StatusFiring, StatusResolved)
	}
	if a.Severity != strings.ToLower(a.Severity) {
		return fmt.Errorf("severity %q must be lower case", a.Severity)
	}
	for k := range a.Labels {
		if k == "" {
			return errors.New("empty label name")
		}
	}
	for _, s := range []string{a.ID, a.Name, a.Summary, a.Source} {
		if !utf8.ValidString(s) {
			return errors.New("text is not valid UTF-8")
		}
	}
	return nil
}

// normalize fills the defaults that come from the alert itself: the name
// from the subject and the severity, lower-cased.
func (a *Alert) normalize() error {
	if a.Name == "" {
		a.Name = strings.TrimPrefix(a.Subject, SubjectPrefix)
	}
	sev, err := parseSeverity(a.Severity)
	if err != nil {
		return err
	}
	a.Severity = sev
	return nil
}

// parseSeverity returns s lower-cased, or warning if s is empty.
func parseSeverity(s string) (string, error) {
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case "":
		return SeverityWarning, nil
	case SeverityInfo, SeverityWarning, SeverityError, SeverityCritical:
		return v, nil
	}
	return "", fmt.Errorf("invalid severity %q: want info, warning, error or critical", s)
}

// NewID returns a new alert ID: a ULID, 26 characters of Crockford base32
// holding the time in milliseconds and 80 random bits. IDs sort by creation
// time to the millisecond and are unique without coordination.
func NewID() string { return ulid.Make().String() }

// alertError is the error for a rejected alert: "<op>: <reason>", wrapping
// ErrInvalidAlert and the underlying error, if any.
type alertError struct {
	op  string
	msg string // overrides err's text when set
	err error
}

func (e *alertError) Error() string {
	if e.msg != "" {
		return e.op + ": " + e.msg
	}
	return e.op + ": " + e.err.Error()
}

func (e *alertError) Unwrap() []error {
	if e.err == nil {
		return []error{ErrInvalidAlert}
	}
	return []error{ErrInvalidAlert, e.err}
}

// publishable reports whether s is a subject to publish on: dot-separated
// non-empty tokens, without wildcards or white space.
func publishable(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n*>") {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return false
		}
	}
	return true
}

// DecodeAlert decodes an alert published on subject.
//
// A payload starting with '{' (after white space) must be exactly one JSON
// object with only Alert's keys, spelled exactly and each once, nested at
// most MaxDepth deep; one starting with '[' is refused (a batch of alerts is
// not an alert). Any other
// non-empty UTF-8 text is an alert whose Summary is that text, trimmed: what
// `nats pub alerts.disk_full "disk 95% on db-3"` sends.
//
// Subject, when not empty, overrides the payload's subject: the subject a
// message arrived on is a fact, the payload's is a claim. Name defaults to
// the subject without "alerts."; Severity defaults to warning and is
// lower-cased. Errors wrap ErrInvalidAlert.
func DecodeAlert(subject string, data []byte) (Alert, error) {
	fail := func(err error) (Alert, error) { return Alert{}, &alertError{op: "decode alert", err: err} }
	if !utf8.Valid(data) {
		return fail(errors.New("payload is not valid UTF-8"))
	}
	text := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\uFEFF"))) // a BOM is not text
	if len(text) == 0 {
		return fail(errors.New("empty payload"))
	}
	if text[0] == '[' {
		return fail(errors.New("a JSON array is not an alert: publish one alert per message"))
	}
	var a Alert
	if text[0] == '{' {
		if err := decodeJSON(text, &a); err != nil {
			return Alert{}, err
		}
	} else {
		a.Summary = string(text)
	}
	if subject != "" {
		a.Subject = subject
	}
	if err := a.normalize(); err != nil {
		return fail(err)
	}
	if err := a.validate(); err != nil {
		return fail(err)
	}
	return a, nil
}

// decodeJSON decodes exactly one JSON object into a, strictly: only Alert's
// keys, spelled exactly, each at most once.
func decodeJSON(data []byte, a *Alert) error {
	// The depth is checked before checkKeys walks the object.
	if err := strictjson.CheckDepth(data, MaxDepth); err != nil {
		return &alertError{op: "decode alert", err: err}
	}
	if err := checkKeys(data); err != nil {
		return err
	}
	if err := strictjson.Decode(data, a, strictjson.Options{DisallowUnknownFields: true}); err != nil {
		return &alertError{op: "decode alert", msg: timeHint(err), err: err}
	}
	return nil
}

// alertKeys are the JSON keys of Alert's fields, in field order and as a set.
var alertKeys, isAlertKey = func() (string, map[string]bool) {
	t := reflect.TypeFor[Alert]()
	var names []string
	set := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
		set[name] = true
	}
	return strings.Join(names, ", "), set
}()

// checkKeys rejects an object key that is not one of Alert's exactly (encoding/json
// would match "nAme" to name) or that appears twice (encoding/json would keep
// the last). Values are not decoded here; malformed JSON is left to the decoder
// for its error message.
func checkKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // '{'
		return nil
	}
	seen := make(map[string]bool, len(isAlertKey))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, ok := tok.(string)
		if !ok {
			return nil
		}
		switch {
		case !isAlertKey[key]:
			return &alertError{op: "decode alert", err: fmt.Errorf("unknown field %q (%s)", key, keyHint(key))}
		case seen[key]:
			return &alertError{op: "decode alert", err: fmt.Errorf("field %q given twice", key)}
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

// keyHint says what an unknown key should have been.
func keyHint(key string) string {
	for k := range isAlertKey {
		if strings.EqualFold(k, key) {
			return fmt.Sprintf("keys are case-sensitive: did you mean %q?", k)
		}
	}
	return "want " + alertKeys
}

// timeHint words a bad time for people reading a dead-letter reason, or is
// "" for other errors. encoding/json does not say which field a time came
// from (time.Time decodes itself).
func timeHint(err error) string {
	var tm *time.ParseError
	if errors.As(err, &tm) || strings.HasPrefix(err.Error(), "Time.UnmarshalJSON") {
		return `field "timestamp": want an RFC 3339 time string, e.g. "2026-01-02T15:04:05Z"`
	}
	return ""
}

// ReadAlert reads an alert as a producer writes it (a line of `reactor send
// --file`, an object of HTTP ingest's /v1/alerts): one JSON object whose
// subject is its "subject", or "alerts." + its "name", or else
// defaultSubject, if not empty; the subject must be under "alerts.". An
// alert without an id gets a new one, one without a timestamp the current
// time. Errors wrap ErrInvalidAlert.
func ReadAlert(data []byte, defaultSubject string) (Alert, error) {
	fail := func(err error) (Alert, error) { return Alert{}, &alertError{op: "decode alert", err: err} }
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return fail(errors.New("want a JSON object"))
	}
	var probe struct {
		Subject string `json:"subject"`
		Name    string `json:"name"`
	}
	perr := json.Unmarshal(data, &probe) // on error, DecodeAlert says what is wrong
	subject := probe.Subject
	if subject == "" && probe.Name != "" {
		subject = SubjectPrefix + strings.TrimPrefix(probe.Name, SubjectPrefix)
	}
	if subject == "" {
		subject = defaultSubject
	}
	switch {
	case subject == "" && perr == nil:
		return fail(errors.New(`alert has neither "subject" nor "name"`))
	case subject != "" && !strings.HasPrefix(subject, SubjectPrefix):
		return fail(fmt.Errorf("subject %q: want %s<name>", subject, SubjectPrefix))
	}
	a, err := DecodeAlert(subject, data)
	if err != nil {
		return Alert{}, err
	}
	if a.ID == "" {
		a.ID = NewID()
	}
	if a.Timestamp.IsZero() {
		a.Timestamp = time.Now().UTC()
	}
	return a, nil
}

// Msg encodes a into the message that publishes it: its JSON on its
// subject, with its ID as the Nats-Msg-Id header, so that a publish retried
// within the duplicate window is stored once. a must be valid and have an
// ID; with maxPayload > 0 (the server's, nats.Conn.MaxPayload) a larger
// payload is refused with its size. Errors wrap ErrInvalidAlert.
func (a Alert) Msg(maxPayload int64) (*nats.Msg, error) {
	if err := a.validate(); err != nil {
		return nil, &alertError{op: "invalid alert", err: err}
	}
	if a.ID == "" {
		return nil, &alertError{op: "invalid alert", err: errors.New("id is required to publish (it is the Nats-Msg-Id)")}
	}
	data, err := json.Marshal(a)
	if err != nil {
		return nil, &alertError{op: "encode alert", err: err}
	}
	if maxPayload > 0 && int64(len(data)) > maxPayload {
		return nil, &alertError{op: "encode alert", err: fmt.Errorf("too large: %d bytes of JSON, the server accepts at most %d", len(data), maxPayload)}
	}
	msg := nats.NewMsg(a.Subject)
	msg.Data = data
	msg.Header.Set(nats.MsgIdHdr, a.ID)
	return msg, nil
}
