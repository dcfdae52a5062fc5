package stream

import (
	"context"
	"encoding/json"
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
	apiDesc := func(code int, errCode jetstream.ErrorCode, desc string) error {
		return fmt.Errorf("nats: %w", &jetstream.APIError{Code: code, ErrorCode: errCode, Description: desc})
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
		{"server store full", api(503, errCodeInsufficientResources), false},
		{"account store full", api(400, errCodeAccountResources), false},
		{"stream full", apiDesc(503, errCodeStreamStoreFailed, "maximum bytes exceeded"), false},
		{"stream store failed otherwise", apiDesc(503, errCodeStreamStoreFailed, "input/output error"), true},
	}
	for _, tt := range tests {
		if got := retryable(tt.err); got != tt.want {
			t.Errorf("%s: retryable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestClassify: a full store, whichever limit, becomes a *StoreFullError
// that says which; any other error is left as it is.
func TestClassify(t *testing.T) {
	t.Parallel()
	api := func(code int, errCode jetstream.ErrorCode, desc string) error {
		return fmt.Errorf("nats: %w", &jetstream.APIError{Code: code, ErrorCode: errCode, Description: desc})
	}
	tests := []struct {
		name string
		err  error
		want StoreLimit // "" for an error left alone
	}{
		{"server", api(503, errCodeInsufficientResources, "insufficient resources"), LimitServer},
		{"account", api(400, errCodeAccountResources, "resource limits exceeded for account"), LimitAccount},
		{"stream bytes", api(503, errCodeStreamStoreFailed, "maximum bytes exceeded"), LimitStream},
		{"stream messages", api(503, errCodeStreamStoreFailed, "maximum messages exceeded"), LimitStream},
		{"stream I/O", api(503, errCodeStreamStoreFailed, "input/output error"), ""},
		{"too large", api(400, jetstream.JSErrCodeStreamMessageExceedsMaximum, "message size exceeds maximum allowed"), ""},
		{"timeout", context.DeadlineExceeded, ""},
	}
	for _, tt := range tests {
		err := classify(tt.err)
		var full *StoreFullError
		switch {
		case tt.want == "" && (err != tt.err || errors.Is(err, ErrStoreFull)):
			t.Errorf("%s: classify(%v) = %v, want it unchanged", tt.name, tt.err, err)
		case tt.want != "" && (!errors.As(err, &full) || full.Limit != tt.want || !errors.Is(err, ErrStoreFull) || !errors.Is(err, tt.err)):
			t.Errorf("%s: classify(%v) = %#v, want a *StoreFullError of the %s wrapping it", tt.name, tt.err, err, tt.want)
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

// TestDecodePubAckAsNatsGo: every answer reads as nats.go's own decoding
// (encoding/json into its pubAckResponse) reads it.
func TestDecodePubAckAsNatsGo(t *testing.T) {
	t.Parallel()
	type natsGoResponse struct {
		Error *jetstream.APIError `json:"error,omitempty"`
		jetstream.PubAck
	}
	for _, data := range []string{
		`{"stream":"ALERTS","seq":7}`,
		`{"stream":"ALERTS","seq":18446744073709551615,"duplicate":true}`,
		`{"stream":"ALERTS","seq":3,"domain":"hub","duplicate":false}`,
		`{"stream":"COUNTS","seq":9,"val":"12"}`,
		`{"error":null,"stream":"ALERTS","seq":1}`,
		` {"seq":2, "stream" : "ALERTS\u00e9"} `,
		`{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}}`,
		`{"error":{"code":400}}`,
		`{"stream":"","seq":1}`,
		`{}`,
		`[]`,
		`null`,
		``,
		`{"stream":"ALERTS","seq":1`,
	} {
		ack, err := decodePubAck(&nats.Msg{Data: []byte(data)})
		var want natsGoResponse
		var wantErr error
		switch {
		case json.Unmarshal([]byte(data), &want) != nil:
			wantErr = jetstream.ErrInvalidJSAck
		case want.Error != nil:
			wantErr = want.Error
		case want.Stream == "":
			wantErr = jetstream.ErrInvalidJSAck
		}
		switch {
		case wantErr == nil && (err != nil || ack == nil || *ack != want.PubAck):
			t.Errorf("%s: ack %+v, err %v; want %+v", data, ack, err, want.PubAck)
		case wantErr != nil && fmt.Sprint(err) != fmt.Sprint(wantErr):
			t.Errorf("%s: ack %+v, err %v; want err %v", data, ack, err, wantErr)
		}
	}
}

func BenchmarkDecodePubAck(b *testing.B) {
	m := &nats.Msg{Data: []byte(`{"stream":"ALERTS","seq":123456,"duplicate":false}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodePubAck(m); err != nil {
			b.Fatal(err)
		}
	}
}
