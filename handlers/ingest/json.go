package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/reactor-alerts/reactor/handlers"
)

// decodeStrict decodes one JSON value of body into v. Unknown fields are
// accepted (senders add fields over versions); trailing data is not.
func decodeStrict(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return badRequest("empty body")
	}
	if err := checkDepth(body, handlers.MaxDepth); err != nil {
		return badRequest("%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return badRequest("%s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("trailing data after the JSON object at byte %d", dec.InputOffset())
	}
	return nil
}

// describeJSONError says what is wrong with a body and where, without
// encoding/json's "json:" prefix.
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
		return fmt.Sprintf("cannot use a JSON %s here: want an object", typ.Value)
	case errors.As(err, &tm):
		return fmt.Sprintf("a time is not RFC 3339 (%q), e.g. \"2026-01-02T15:04:05Z\"", tm.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// checkDepth rejects JSON nested deeper than limit, scanning bytes without
// decoding. Brackets inside strings do not count.
func checkDepth(data []byte, limit int) error {
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
