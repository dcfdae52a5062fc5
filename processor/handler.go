// Package processor is reactor's worker pool: it pulls messages from a durable
// JetStream consumer, routes each one to the handler registered for its
// subject and turns the handler's result into an acknowledgement: ack, nak
// with a delay, or dead-letter.
//
// Handlers follow the net/http model:
//
//	r := processor.NewRouter()
//	r.On("alerts.terminator_detected", func(ctx context.Context, m *processor.Message) error {
//		return alertSarahConnor(m.Data())
//	})
//
// A handler never acknowledges anything itself. It returns nil (ack), a plain
// error (retry with backoff until MaxDeliver, then dead-letter), Retry(after),
// Permanent(err) (dead-letter now) or ErrDrop (ack, nothing else).
package processor

import "context"

// Handler reacts to one message. Process must be safe for concurrent use: the
// processor calls it from many workers at once.
type Handler interface {
	Process(ctx context.Context, m *Message) error
}

// HandlerFunc adapts an ordinary function to the Handler interface.
type HandlerFunc func(ctx context.Context, m *Message) error

// Process calls f(ctx, m).
func (f HandlerFunc) Process(ctx context.Context, m *Message) error { return f(ctx, m) }

// Middleware wraps a Handler with behaviour of its own (logging, timeouts,
// recovery). Middleware registered first runs outermost.
type Middleware func(Handler) Handler
