// Package handlers is what reactor does with alerts out of the box: decode
// the payload into an Alert, then print it, run a command or call a webhook.
//
// The handlers are ordinary processor.Handler values, usable from Go:
//
//	r := processor.NewRouter()
//	r.Handle("alerts.terminator_detected", &handlers.Exec{Command: []string{"/usr/local/bin/page", "--team", "ops"}})
//	r.Handle("alerts.>", &handlers.Print{})
//
// or from a YAML file read by LoadConfig and wired by Register, which is what
// `reactor run --config reactor.yaml` does.
//
// Every handler decodes its message with Decode first. A payload that is not a
// valid alert is a permanent error: retrying cannot fix it, so the processor
// dead-letters it at once with the reason.
package handlers

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/reactor-alerts/reactor/processor"
)

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
// Decode, DecodeAlert and Alert.Validate.
var ErrInvalidAlert = errors.New("handlers: invalid alert")

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
		return fmt.Errorf("invalid subject %q: want dot-separated tokens without wildcards or spaces", a.Subject)
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

// crockford is the Crockford base32 alphabet used by ULIDs: sortable as text.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns a new alert ID: a 26-character ULID, 48 bits of Unix time in
// milliseconds then 80 random bits, in Crockford base32. IDs sort by creation
// time to the millisecond and are unique without coordination.
func NewID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails; it crashes instead.
	var hi, lo uint64
	for i := range 8 {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	var out [26]byte
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

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

// publishable reports whether s is a subject to publish on: a valid pattern
// without wildcards.
func publishable(s string) bool {
	wildcard, err := processor.CheckPattern(s)
	return err == nil && !wildcard
}
