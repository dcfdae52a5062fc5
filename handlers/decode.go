package handlers

import (
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// Decode decodes m's payload into an alert, as stream.DecodeAlert does for m's
// subject, and fills in what the message knows: the ID from the Nats-Msg-Id
// header when the payload has none, and the timestamp from the stream's when
// the payload has none. Errors are permanent (see processor.Permanent): a
// payload that is not an alert is dead-lettered at once with the reason.
func Decode(m *processor.Message) (stream.Alert, error) {
	a, err := stream.DecodeAlert(m.Subject(), m.Data())
	if err != nil {
		return stream.Alert{}, processor.Permanent(err)
	}
	if a.ID == "" {
		a.ID = m.ID()
	}
	if a.Timestamp.IsZero() {
		a.Timestamp = m.Timestamp()
	}
	return a, nil
}
