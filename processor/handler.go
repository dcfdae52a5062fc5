package processor

import "context"

// Handler reacts to one message. Process must be safe for concurrent use: the
// processor calls it from many workers at once. It never acknowledges m: its
// result decides, as follows.
//
//   - nil: the message is acknowledged.
//   - an error: the message is redelivered after a backoff (Config.BackoffBase,
//     doubling up to Config.BackoffMax, with jitter), until Config.MaxDeliver
//     deliveries; the last one's error dead-letters it, with the error as the
//     reason.
//   - Retry(after, err): redelivered after that delay instead; on the last
//     delivery, dead-lettered like any other error.
//   - Permanent(err): dead-lettered now, without a retry (malformed input, a
//     request the other side refuses for good).
//   - ErrDrop (or an error wrapping it): acknowledged, no dead letter: the
//     message is deliberately ignored.
//   - a panic: recovered as a *PanicError and handled as an error (retried,
//     then dead-lettered); the process keeps running.
//
// On shutdown, handlers still running after Config.ShutdownTimeout have ctx
// cancelled with cause ErrShutdown; an error they return then is retried
// without backoff. Handlers must be idempotent: a message in flight when a
// process dies is delivered again.
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
