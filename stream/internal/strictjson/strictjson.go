// Package strictjson decodes the JSON that reactor takes from outside (alert
// payloads, HTTP ingest bodies) one way: exactly one value, nested no deeper
// than a bound, nothing after it, and errors worded for the person who sent
// it (what is wrong and where, without encoding/json's "json:" prefix).
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Options say how strict Decode is. The zero value bounds nothing and
// accepts unknown fields.
type Options struct {
	// MaxDepth is the deepest nesting of objects and arrays accepted,
	// checked before the decoder walks the data. Defaults to no bound (0).
	MaxDepth int
	// DisallowUnknownFields refuses an object key that matches no field of
	// the value decoded into. Defaults to false: unknown keys are ignored.
	DisallowUnknownFields bool
}

// Error is a decoding failure. Its text says what is wrong for a reader;
// it wraps encoding/json's error, when there is one, for errors.As.
type Error struct {
	Msg string
	Err error
}

func (e *Error) Error() string { return e.Msg }

func (e *Error) Unwrap() error { return e.Err }

// Decode decodes exactly one JSON value of data into v, which must point to
// a struct (a value of another JSON type is refused as "want an object").
// Errors are *Error.
func Decode(data []byte, v any, opts Options) error {
	if opts.MaxDepth > 0 {
		if err := CheckDepth(data, opts.MaxDepth); err != nil {
			return &Error{Msg: err.Error()}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if opts.DisallowUnknownFields {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return &Error{Msg: Describe(err), Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &Error{Msg: fmt.Sprintf("trailing data after the JSON object at byte %d", dec.InputOffset())}
	}
	return nil
}

// Describe rewords an error of encoding/json for the person who sent the
// JSON: what is wrong and where, without the "json:" prefix.
func Describe(err error) string {
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
		return fmt.Sprintf("cannot use a JSON %s here: want an object", typ.Value)
	case errors.As(err, &tm):
		return fmt.Sprintf("a time is not RFC 3339 (%q), e.g. \"2026-01-02T15:04:05Z\"", tm.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// CheckDepth rejects JSON nested deeper than limit, scanning bytes without
// decoding. Brackets inside strings do not count.
func CheckDepth(data []byte, limit int) error {
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
			if depth++; depth > limit {
				return fmt.Errorf("JSON nested deeper than %d levels", limit)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}
