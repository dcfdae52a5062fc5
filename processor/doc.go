// Package processor is reactor's worker pool: it pulls messages from a durable
// JetStream consumer, routes each one to the handler registered for its
// subject and turns the handler's result into an acknowledgement: ack, nak
// with a delay, or dead-letter.
//
// Register handlers on a Router, as on an http.ServeMux, and run:
//
//	r := processor.NewRouter()
//	r.On("alerts.disk_full", func(ctx context.Context, m *processor.Message) error {
//		return page(ctx, m.Data()) // nil acks; an error retries, then dead-letters
//	})
//	conn, err := stream.Open(ctx, stream.Config{URL: "nats://127.0.0.1:4222"})
//	...
//	p, err := processor.New(conn.JS, r, processor.Config{})
//	...
//	err = p.Run(ctx) // until ctx is cancelled, then drains
//
// A handler never acknowledges anything itself: what its result does is
// Handler's contract. ExampleNew runs the whole thing on an embedded server.
package processor
