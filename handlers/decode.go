package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/reactor-alerts/reactor/processor"
)

// MaxDepth is the deepest nesting of JSON objects and arrays Decode accepts.
// An alert needs two levels (the object and its labels); the bound rejects
// abusive payloads before the JSON decoder walks them.
const MaxDepth = 32

// Decode decodes m's payload into an Alert, as DecodeAlert does for m's
// subject, and fills in what the message knows: the ID from the Nats-Msg-Id
// header when the payload has none, and the timestamp from the stream's when
// the payload has none. Errors are permanent (see processor.Permanent): a
// payload that is not an alert is dead-lettered at once with the reason.
func Decode(m *processor.Message) (Alert, error) {
	a, err := DecodeAlert(m.Subject(), m.Data())
	if err != nil {
		return Alert{}, err
	}
	if a.ID == "" {
		a.ID = m.ID()
	}
	if a.Timestamp.IsZero() {
		a.Timestamp = m.Timestamp()
	}
	return a, nil
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
// lower-cased. Errors wrap ErrInvalidAlert and are permanent.
func DecodeAlert(subject string, data []byte) (Alert, error) {
	a, err := decodeAlert(subject, data)
	if err != nil {
		return Alert{}, processor.Permanent(err)
	}
	return a, nil
}

func decodeAlert(subject string, data []byte) (Alert, error) {
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
	if err := checkDepth(data, MaxDepth); err != nil {
		return &alertError{op: "decode alert", err: err}
	}
	if err := checkKeys(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(a); err != nil {
		return &alertError{op: "decode alert", msg: describeJSONError(err), err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &alertError{op: "decode alert", err: fmt.Errorf("trailing data after the JSON object at byte %d", dec.InputOffset())}
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

// describeJSONError rewords encoding/json's errors for people reading a
// dead-letter reason: what is wrong and where, without the "json:" prefix.
func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tm *time.ParseError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("malformed JSON at byte %d: %s", syntax.Offset, syntax)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of input"
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("field %q: cannot use a JSON %s as %s", typ.Field, typ.Value, typ.Type)
	case errors.As(err, &typ):
		return fmt.Sprintf("cannot use a JSON %s as an alert", typ.Value)
	case errors.As(err, &tm), strings.HasPrefix(err.Error(), "Time.UnmarshalJSON"):
		return `field "timestamp": want an RFC 3339 time string, e.g. "2026-01-02T15:04:05Z"`
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// checkDepth rejects JSON nested deeper than max, scanning bytes without
// decoding. Brackets inside strings do not count.
func checkDepth(data []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range data {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > max {
				return fmt.Errorf("JSON nested deeper than %d levels", max)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}
