package processor

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/reactor-alerts/reactor/stream"
)

const tracerName = "github.com/reactor-alerts/reactor/processor"

// consumerSpan are the start options of every span, made once.
var consumerSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}

// startSpan continues the alert's trace (its traceparent header) with a
// consumer span around the handler. With no tracer provider installed the
// span is a no-op that still carries the publisher's trace context, so
// handlers can read it with trace.SpanContextFromContext; with a noop one
// (p.tracer nil) there is only that trace context.
func (p *Processor) startSpan(ctx context.Context, m *Message) (context.Context, trace.Span) {
	ctx = stream.ExtractTrace(ctx, m.header)
	if p.tracer == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	// A fixed span name: subjects can be many (alerts.disk.host-17), and
	// the subject is an attribute.
	ctx, span := p.tracer.Start(ctx, "reactor process", consumerSpan...)
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", m.subject),
			attribute.String("messaging.message.id", m.ID()),
			attribute.Int64("messaging.nats.stream_sequence", int64(m.sequence)),
			attribute.Int("messaging.nats.delivered", m.delivered),
		)
	}
	return ctx, span
}

// endSpan records the outcome on span and ends it.
func endSpan(span trace.Span, outcome Outcome, err error) {
	if span.IsRecording() {
		span.SetAttributes(attribute.String("reactor.outcome", outcome.String()))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}
