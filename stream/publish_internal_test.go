package stream

import (
	"context"
	"errors"
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

// TestDecodePubAck: the server's answers to a publish, as PublishBatch and
// Publish read them off their reply subjects.
func TestDecodePubAck(t *testing.T) {
	t.Parallel()
	noResponders := &nats.Msg{Header: nats.Header{"Status": []string{"503"}}}
	tests := []struct {
		name    string
		msg     *nats.Msg
		wantSeq uint64
		wantErr error
	}{
		{"stored", &nats.Msg{Data: []byte(`{"stream":"ALERTS","seq":7}`)}, 7, nil},
		{"no responders", noResponders, 0, jetstream.ErrNoStreamResponse},
		{"not json", &nats.Msg{Data: []byte(`+OK`)}, 0, jetstream.ErrInvalidJSAck},
		{"no stream", &nats.Msg{Data: []byte(`{"seq":7}`)}, 0, jetstream.ErrInvalidJSAck},
	}
	for _, tt := range tests {
		ack, err := decodePubAck(tt.msg)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && (ack == nil || ack.Sequence != tt.wantSeq || ack.Stream != "ALERTS")) {
			t.Errorf("%s: ack %+v, err %v; want seq %d, err %v", tt.name, ack, err, tt.wantSeq, tt.wantErr)
		}
	}
	_, err := decodePubAck(&nats.Msg{Data: []byte(`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}`)})
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence || retryable(err) {
		t.Errorf("error answer: %v, want a non-retryable APIError with code %d", err, jetstream.JSErrCodeStreamWrongLastSequence)
	}
}
