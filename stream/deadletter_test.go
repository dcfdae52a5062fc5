package stream

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestDeadLetterRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 3, 0, 0, 123, time.UTC)
	in := DeadLetter{
		Subject:      "alerts.cpu",
		Data:         []byte(`{"summary":"hot"}`),
		Header:       nats.Header{"Traceparent": {"00-abc-def-01"}, "Nats-Msg-Id": {"drop-me"}},
		Reason:       ReasonMaxDeliveries,
		Error:        "panic: boom\ngoroutine 1 [running]:\n\tmain.go:1 \\ done",
		Entry:        "alerts.>",
		Stream:       "ALERTS",
		Sequence:     42,
		Group:        "reactor",
		Deliveries:   5,
		FirstAttempt: now,
		LastAttempt:  now.Add(time.Minute),
		Queued:       now.Add(-time.Second),
		MsgID:        "abc",
	}
	msg := in.Msg("dlq.alerts.cpu")
	for k, vs := range msg.Header {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				t.Errorf("header %s has a line break: %q", k, v)
			}
		}
	}
	if msg.Header.Get("Nats-Msg-Id") != "" {
		t.Errorf("original Nats-Msg-Id copied into the dead letter")
	}
	out := ParseDeadLetter(msg.Subject, msg.Data, msg.Header)
	if out.Error != in.Error || out.Reason != in.Reason || out.Sequence != 42 || out.Deliveries != 5 ||
		!out.FirstAttempt.Equal(in.FirstAttempt) || !out.LastAttempt.Equal(in.LastAttempt) || !out.Queued.Equal(in.Queued) ||
		out.Subject != in.Subject || out.Stream != in.Stream || out.Group != in.Group || out.MsgID != in.MsgID || out.Header.Get("Traceparent") != "00-abc-def-01" {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
}

// A redriven alert that fails again keeps the dead letter it came from in
// its new one; the other Reactor-* headers of the alert are not its own.
func TestDeadLetterKeepsRedrivenFrom(t *testing.T) {
	t.Parallel()
	in := DeadLetter{
		Subject: "alerts.cpu", Reason: ReasonPermanent, Stream: "ALERTS", Sequence: 7,
		Header: nats.Header{HeaderRedrivenFrom: {"42"}, HeaderReason: {"stale"}, "Traceparent": {"00-abc-def-01"}},
	}
	msg := in.Msg("dlq.alerts.cpu")
	if got := msg.Header.Get(HeaderRedrivenFrom); got != "42" {
		t.Errorf("%s = %q, want 42", HeaderRedrivenFrom, got)
	}
	if got := msg.Header.Values(HeaderReason); len(got) != 1 || got[0] != ReasonPermanent {
		t.Errorf("%s = %q, want only the new reason", HeaderReason, got)
	}
	out := ParseDeadLetter(msg.Subject, msg.Data, msg.Header)
	if out.RedrivenFrom != 42 {
		t.Errorf("parsed RedrivenFrom = %d, want 42", out.RedrivenFrom)
	}
	if again := out.Msg("dlq.alerts.cpu"); again.Header.Get(HeaderRedrivenFrom) != "42" {
		t.Errorf("written back: %s = %q, want 42", HeaderRedrivenFrom, again.Header.Get(HeaderRedrivenFrom))
	}
}

func TestTruncateLongError(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxErrorHeader+100)
	msg := DeadLetter{Error: long}.Msg("dlq.x")
	if got := len(msg.Header.Get(HeaderError)); got > maxErrorHeader+64 {
		t.Errorf("error header is %d bytes, want it truncated near %d", got, maxErrorHeader)
	}
}

func TestFitPayload(t *testing.T) {
	t.Parallel()
	const maxPayload = 4096
	small := DeadLetter{Data: []byte("small"), Error: "x"}.Msg("dlq.a")
	fitPayload(small, maxPayload)
	if string(small.Data) != "small" || small.Header.Get(HeaderTruncated) != "" {
		t.Errorf("a small payload was changed: %q %v", small.Data, small.Header)
	}
	big := DeadLetter{Data: []byte(strings.Repeat("y", maxPayload)), Error: strings.Repeat("e", 1000)}.Msg("dlq.a")
	fitPayload(big, maxPayload)
	if got := big.Size() + publishOverhead; got > maxPayload {
		t.Errorf("fitted message is %d bytes with overhead, over %d", got, maxPayload)
	}
	if big.Header.Get(HeaderTruncated) != "4096" || len(big.Data) == 0 {
		t.Errorf("truncated header %q, kept %d bytes", big.Header.Get(HeaderTruncated), len(big.Data))
	}
}
