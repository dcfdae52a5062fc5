package stream

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRetryable: which publish errors are worth sending again with the same
// id. A replicated stream answers a resend that overtook the first send
// with "duplicate message id is in process" (409, 10158): the first send's
// PubAck is still to come, so it is no failure.
func TestRetryable(t *testing.T) {
	t.Parallel()
	api := func(code int, errCode jetstream.ErrorCode) error {
		return fmt.Errorf("nats: %w", &jetstream.APIError{Code: code, ErrorCode: errCode})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"timeout", context.DeadlineExceeded, true},
		{"no responders", jetstream.ErrNoStreamResponse, true},
		{"disconnected", nats.ErrDisconnected, true},
		{"id in process", api(409, errCodeMsgIDInProcess), true},
		{"server error", api(503, 0), true},
		{"wrong last sequence", api(400, jetstream.JSErrCodeStreamWrongLastSequence), false},
		{"payload too large", nats.ErrMaxPayload, false},
		{"connection closed", nats.ErrConnectionClosed, false},
	}
	for _, tt := range tests {
		if got := retryable(tt.err); got != tt.want {
			t.Errorf("%s: retryable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
