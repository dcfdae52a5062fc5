package handlers

import (
	"context"
	"strings"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// On registers fn on r for the alerts called name: the subject pattern
// "alerts.<name>" ("terminator_detected"; "db.>" for every alert under
// alerts.db), or name itself when it starts with "alerts.". It is the
// seed's
//
//	@On('terminator_detected')
//
// in Go: r's most specific pattern takes an alert, as in processor.Router.
// It panics, as r.Handle does, on an invalid or duplicate pattern.
func On(r *processor.Router, name string, fn func(ctx context.Context, a stream.Alert) error) {
	r.Handle(stream.SubjectPrefix+strings.TrimPrefix(name, stream.SubjectPrefix), AlertFunc(fn))
}

// AlertFunc is a handler of decoded alerts: a processor.Handler that decodes
// each message with Decode and calls the function with the alert. A payload
// that is not an alert is dead-lettered with the reason, without calling it.
//
// The function's result is the processor's contract (see
// processor.Handler): nil acknowledges the alert; processor.Retry(after,
// err) retries it after that delay; processor.Permanent(err) dead-letters
// it now; processor.ErrDrop drops it on purpose; processor.Defer(after,
// reason) makes it wait without counting as a failure; any other error
// retries it with backoff and dead-letters it after the last delivery; a
// panic is an error with its stack. Delivery is at least once: a handler
// must be idempotent, and MessageOf(ctx).Delivered() says which attempt it
// is.
type AlertFunc func(ctx context.Context, a stream.Alert) error

// Process decodes m and calls f with the alert.
func (f AlertFunc) Process(ctx context.Context, m *processor.Message) error {
	a, err := Decode(m)
	if err != nil {
		return err
	}
	return f(context.WithValue(ctx, messageKey{}, m), a)
}

type messageKey struct{}

// MessageOf returns the message of the alert an AlertFunc is handling, for
// its delivery count, stream sequence and headers; nil outside an
// AlertFunc's context.
func MessageOf(ctx context.Context) *processor.Message {
	m, _ := ctx.Value(messageKey{}).(*processor.Message)
	return m
}
