package stream

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

// TestTraceAgreesWithPropagator: EnsureTraceparent keeps a header exactly
// when the W3C propagator accepts it, and ExtractTrace reads the same span
// context from it as the propagator, tracestate included.
func TestTraceAgreesWithPropagator(t *testing.T) {
	t.Parallel()
	const (
		tid = "4bf92f3577b34da6a3ce929d0e0e4736"
		sid = "00f067aa0ba902b7"
	)
	for _, tp := range []string{
		"00-" + tid + "-" + sid + "-01",
		"00-" + tid + "-" + sid + "-00",
		"00-" + tid + "-" + sid + "-03",
		"00-" + tid + "-" + sid + "-04",   // reserved flag bit in version 00
		"00-" + tid + "-" + sid + "-01-",  // an empty field after the flags
		"00-" + tid + "-" + sid + "-01-x", // version 00 has no more fields
		"01-" + tid + "-" + sid + "-01-future-fields",
		"01-" + tid + "-" + sid + "-ff",
		"01-" + tid + "-" + sid + "-01x",
		"fe-" + tid + "-" + sid + "-01",
		"ff-" + tid + "-" + sid + "-01",
		"00-" + "4BF92F3577B34DA6A3CE929D0E0E4736" + "-" + sid + "-01", // upper case
		"00-00000000000000000000000000000000-" + sid + "-01",
		"00-" + tid + "-0000000000000000-01",
		"00-" + tid + "-" + sid + "-1",
		"00-" + tid + "-" + sid,
		"0-" + tid + "-" + sid + "-01",
		"00-" + tid[1:] + "-" + sid + "-001",
		"00_" + tid + "-" + sid + "-01",
		"zz-" + tid + "-" + sid + "-01",
		"00-" + tid[:31] + "g-" + sid + "-01",
		"",
	} {
		for _, h := range []nats.Header{
			{"traceparent": {tp}},
			{"Traceparent": {tp}, "Tracestate": {"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}},
			{"traceparent": {tp}, "tracestate": {"not a tracestate"}},
		} {
			want := trace.SpanContextFromContext(traceContext.Extract(context.Background(), headerCarrier(h)))
			if got := validTraceparent(tp); got != want.IsValid() {
				t.Errorf("validTraceparent(%q) = %v, the propagator says %v", tp, got, want.IsValid())
			}
			if got := trace.SpanContextFromContext(ExtractTrace(context.Background(), h)); !got.Equal(want) {
				t.Errorf("ExtractTrace(%v) = %+v, the propagator reads %+v", h, got, want)
			}
		}
	}
	if got := ExtractTrace(context.Background(), nil); trace.SpanContextFromContext(got).IsValid() {
		t.Errorf("ExtractTrace(nil header) has a span context")
	}
}

// TestEnsureTraceparent: a valid header is kept; a missing or invalid one
// is replaced by the context's span or a new trace, written unsampled (so
// nats-server does not map the alert's headers) and read back sampled,
// while a publisher's unsampled trace stays unsampled.
func TestEnsureTraceparent(t *testing.T) {
	t.Parallel()
	const kept = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	h := nats.Header{"traceparent": {kept}}
	EnsureTraceparent(context.Background(), h)
	if got := Traceparent(h); got != kept || len(h) != 1 {
		t.Fatalf("valid header replaced: %v", h)
	}

	seen := map[string]bool{}
	for _, h := range []nats.Header{{}, {"Traceparent": {"00-bad-01"}}, {}} {
		EnsureTraceparent(context.Background(), h)
		tp := Traceparent(h)
		sc := trace.SpanContextFromContext(ExtractTrace(context.Background(), h))
		if !sc.IsValid() || !sc.IsSampled() || !strings.HasSuffix(tp, "-00") || seen[tp] {
			t.Fatalf("new traceparent %q: valid %v, read back sampled %v, seen before %v", tp, sc.IsValid(), sc.IsSampled(), seen[tp])
		}
		seen[tp] = true
	}
	const unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	if sc := trace.SpanContextFromContext(ExtractTrace(context.Background(), nats.Header{"traceparent": {unsampled}})); !sc.IsValid() || sc.IsSampled() {
		t.Fatalf("publisher's unsampled %q read back valid %v, sampled %v", unsampled, sc.IsValid(), sc.IsSampled())
	}

	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled,
	})
	h = nats.Header{}
	EnsureTraceparent(trace.ContextWithSpanContext(context.Background(), parent), h)
	if got := trace.SpanContextFromContext(ExtractTrace(context.Background(), h)); got.TraceID() != parent.TraceID() || got.SpanID() != parent.SpanID() {
		t.Fatalf("traceparent %q, want the context's span %s/%s", Traceparent(h), parent.TraceID(), parent.SpanID())
	}
}
