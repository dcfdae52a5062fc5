package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// A panic's Error() is one line; its stack goes to the log line's "stack"
// attribute and after the error in the dead letter.
func TestPanicErrorKeepsTheStackApart(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	h := Recover()(HandlerFunc(func(context.Context, *Message) error { panic("handler bug") }))
	err := Logging(logger)(h).Process(context.Background(), NewMessage("alerts.x", nil, nil, MessageInfo{Sequence: 7}))

	if err == nil || err.Error() != "panic: handler bug" {
		t.Fatalf("err = %q, want %q alone", err, "panic: handler bug")
	}
	if detail := errorDetail(fmt.Errorf("wrapped: %w", err)); !strings.HasPrefix(detail, "wrapped: panic: handler bug\ngoroutine ") {
		t.Errorf("dead letter error = %q, want the error, then the stack", detail)
	}
	if detail := errorDetail(Permanent(fmt.Errorf("bad input"))); detail != "permanent: bad input" {
		t.Errorf("dead letter error of a plain error = %q", detail)
	}

	var line struct {
		Msg   string `json:"msg"`
		Err   string `json:"err"`
		Stack string `json:"stack"`
		Seq   uint64 `json:"seq"`
	}
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", logs.String(), err)
	}
	if line.Err != "panic: handler bug" || line.Seq != 7 || !strings.Contains(line.Stack, "goroutine ") || !strings.Contains(line.Stack, "errors_test.go") {
		t.Errorf("log line = %+v, want err without the stack and a stack attribute naming the panicking file", line)
	}
}
