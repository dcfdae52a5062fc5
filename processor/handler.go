package processor

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

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
//   - Defer(after, reason): redelivered after that delay, not counted as a
//     failure: the delivery does not count toward MaxDeliver (see
//     DeferralsBucket), so a deferred message is never dead-lettered for it.
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

// A Mux is a Handler that hands each message to one of its entries: a
// Router, or the rules of a handlers config. Before it runs a message, the
// processor asks its handler, when it is a Mux, which entry takes the
// message; it then runs the handler Route returns and names the entry in its
// log line, its metrics, the Result and the dead letter. Process must do
// what calling the handler Route returns does. Route must be fast and must
// not block: it decides, the handler it returns acts.
type Mux interface {
	Handler
	// Route returns the handler of the entry that takes m, and the
	// entry's name; with no entry, a handler that returns the reason
	// (Permanent(ErrNoHandler), or a permanent decoding error) and "".
	Route(m *Message) (h Handler, entry string)
}

// Group is what a Processor tells a Starter about the group it serves.
type Group struct {
	// Name is the group: Config.Group.
	Name string
	// Topology is Config.Topology, with defaults applied.
	Topology stream.Topology
	// JetStream is the processor's JetStream context.
	JetStream jetstream.JetStream
	// Logger is Config.Logger.
	Logger *slog.Logger
}

// A Starter is a Handler that works beside the messages it handles while a
// Processor runs: the rules of a handlers config share their suppression
// windows with the group's other processes and add up their counts in
// JetStream. Run calls Start once, before the first message, and the stop
// function it returns after the last message is settled, before Run
// returns. An error from Start keeps Run from starting.
type Starter interface {
	Start(ctx context.Context, g Group) (stop func(), err error)
}
