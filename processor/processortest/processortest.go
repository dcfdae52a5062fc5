// Package processortest tests handlers without a server, the way
// rivertest.Worker tests River workers: give a handler a message, get what
// the processor would do with it.
//
//	r := processor.NewRouter()
//	handlers.On(r, "disk_full", page)
//	res := processortest.Process(ctx, r, processortest.AlertMessage(stream.NewAlert("disk_full", "95%"), 1), processor.Config{})
//	if res.Outcome != processor.OutcomeAck { ... }
package processortest

import (
	"context"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// Result is what a Processor does with a message once its handler returned.
type Result struct {
	processor.Decision
	// Entry is the entry that took the message, when the handler is a
	// processor.Mux; empty when none did.
	Entry string
	// Err is the handler's error, nil on success; a panic is a
	// *processor.PanicError.
	Err error
}

// Process runs h on m as a Processor of cfg runs a delivered message: the
// entry h's Route picks when h is a processor.Mux, a panic recovered, and
// the result turned into the processor's decision with cfg's MaxDeliver and
// backoff (Config.Decide). It acknowledges nothing: nothing is connected.
func Process(ctx context.Context, h processor.Handler, m *processor.Message, cfg processor.Config) Result {
	var res Result
	if mux, ok := h.(processor.Mux); ok {
		h, res.Entry = mux.Route(m)
	}
	res.Err = processor.Recover()(h).Process(ctx, m)
	res.Decision = cfg.Decide(res.Err, m.Delivered())
	return res
}

// AlertMessage returns the message that carries a on its delivered-th
// delivery, as a processor hands it to a handler: a's JSON on its subject,
// with its ID as the message id, at sequence 1 of the default alert stream.
// It panics if a cannot be encoded (see stream.Alert.Msg).
func AlertMessage(a stream.Alert, delivered int) *processor.Message {
	if a.ID == "" {
		a.ID = stream.NewID()
	}
	msg, err := a.Msg(0)
	if err != nil {
		panic("processortest: " + err.Error())
	}
	return processor.NewMessage(msg.Subject, msg.Data, msg.Header, processor.MessageInfo{
		Stream:    stream.AlertsDefault,
		Sequence:  1,
		Delivered: delivered,
		Timestamp: time.Now(),
	})
}
