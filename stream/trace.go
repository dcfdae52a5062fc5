package stream

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/textproto"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// W3C trace context travels in the "traceparent" header. Publishers in other
// languages write it lower-case, Go's http.Header canonicalises it to
// "Traceparent"; nats.Header is case-sensitive, so the carrier reads both.
var traceContext = propagation.TraceContext{}

// HeaderCarrier adapts a nats.Header to OpenTelemetry's TextMapCarrier.
// Keys are written in canonical form and read in either form.
type HeaderCarrier nats.Header

// Get returns the first value of key, in canonical or lower-case form.
func (c HeaderCarrier) Get(key string) string {
	if vs := c[canonicalKey(key)]; len(vs) > 0 {
		return vs[0]
	}
	if vs := c[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Set sets key, in canonical form.
func (c HeaderCarrier) Set(key, value string) {
	c[canonicalKey(key)] = []string{value}
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey without its allocation
// for the keys the W3C propagators use, which every alert is read for.
func canonicalKey(key string) string {
	switch key {
	case "traceparent":
		return "Traceparent"
	case "tracestate":
		return "Tracestate"
	case "baggage":
		return "Baggage"
	}
	return textproto.CanonicalMIMEHeaderKey(key)
}

// Keys lists the header keys.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// ExtractTrace returns ctx carrying the trace context of h's traceparent,
// if it has a valid one.
func ExtractTrace(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return traceContext.Extract(ctx, HeaderCarrier(h))
}

// EnsureTraceparent gives h a W3C traceparent: kept if h has a valid one,
// else the span context of ctx, else a new random trace. So every alert can
// be followed from its publish through retries to its dead letter, whether or
// not the publisher traces.
func EnsureTraceparent(ctx context.Context, h nats.Header) {
	if trace.SpanContextFromContext(ExtractTrace(context.Background(), h)).IsValid() {
		return
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		var tid trace.TraceID
		var sid trace.SpanID
		binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rand.Uint64()|1) // never all zero
		binary.BigEndian.PutUint64(sid[:], rand.Uint64()|1)
		sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	}
	traceContext.Inject(trace.ContextWithSpanContext(context.Background(), sc), HeaderCarrier(h))
}

// Traceparent returns h's traceparent header value, or "".
func Traceparent(h nats.Header) string {
	return HeaderCarrier(h).Get("traceparent")
}
