package handlers

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactor-alerts/reactor/processor"
)

func TestDecodeFillsFromMessage(t *testing.T) {
	t.Parallel()
	stored := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hdr := nats.Header{}
	hdr.Set(nats.MsgIdHdr, "hdr-id")
	info := processor.MessageInfo{Stream: "ALERTS", Sequence: 7, Timestamp: stored}

	a, err := Decode(processor.NewMessage("alerts.x", []byte("text"), hdr, info))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "hdr-id" || !a.Timestamp.Equal(stored) {
		t.Errorf("ID, Timestamp = %q, %v; want the header's and the stream's", a.ID, a.Timestamp)
	}

	own := `{"id":"own-id","timestamp":"2025-12-31T23:00:00Z"}`
	a, err = Decode(processor.NewMessage("alerts.x", []byte(own), hdr, info))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "own-id" || a.Timestamp.Year() != 2025 {
		t.Errorf("ID, Timestamp = %q, %v; want the payload's", a.ID, a.Timestamp)
	}

	_, err = Decode(processor.NewMessage("alerts.x", []byte(`{"x":1}`), hdr, info))
	var perm *processor.PermanentError
	if !errors.As(err, &perm) {
		t.Errorf("Decode of a bad payload = %v, want a permanent error", err)
	}
}
