package strictjson

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	type v struct {
		A int       `json:"a"`
		T time.Time `json:"t"`
	}
	for _, tc := range []struct {
		name, data string
		opts       Options
		wantErr    string
	}{
		{"ok", `{"a":1}`, Options{}, ""},
		{"unknown field accepted", `{"a":1,"b":2}`, Options{}, ""},
		{"unknown field refused", `{"a":1,"b":2}`, Options{DisallowUnknownFields: true}, `unknown field "b"`},
		{"trailing data", `{"a":1} x`, Options{}, "trailing data after the JSON object at byte 8"},
		{"two objects", `{"a":1}{"a":2}`, Options{}, "trailing data after the JSON object at byte 8"},
		{"too deep", `{"a":1,"x":[[[]]]}`, Options{MaxDepth: 3}, "JSON nested deeper than 3 levels"},
		{"deep enough", `{"x":[[]]}`, Options{MaxDepth: 3}, ""},
		{"brackets in strings", `{"x":"[[[[{{{{\"["}`, Options{MaxDepth: 1}, ""},
		{"truncated", `{"a":1`, Options{}, "malformed JSON: unexpected end of input"},
		{"syntax", `{"a" 1}`, Options{}, "malformed JSON at byte 6: invalid character '1' after object key"},
		{"field type", `{"a":"x"}`, Options{}, `field "a": cannot use a JSON string as int`},
		{"not an object", `[1]`, Options{}, "cannot use a JSON array here: want an object"},
		{"bad time", `{"t":"yesterday"}`, Options{}, `a time is not RFC 3339 ("yesterday"), e.g. "2026-01-02T15:04:05Z"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got v
			err := Decode([]byte(tc.data), &got, tc.opts)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Decode(%s) = %v, want nil", tc.data, err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Fatalf("Decode(%s) = %v, want %q", tc.data, err, tc.wantErr)
			}
			var e *Error
			if err != nil && !errors.As(err, &e) {
				t.Errorf("error %T is not *Error", err)
			}
		})
	}
}

func TestErrorWrapsDecoderError(t *testing.T) {
	t.Parallel()
	var v struct{ A int }
	err := Decode([]byte(`{"A":"x"}`), &v, Options{})
	var typ *json.UnmarshalTypeError
	if !errors.As(err, &typ) || typ.Field != "A" {
		t.Errorf("errors.As(%v, *json.UnmarshalTypeError) = %v, want the decoder's error", err, typ)
	}
}
