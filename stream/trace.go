package stream

import (
	"context"
	"encoding/binary"
	"encoding/hex"
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

// headerCarrier adapts a nats.Header to OpenTelemetry's TextMapCarrier.
// Keys are written in canonical form and read in either form.
type headerCarrier nats.Header

// Get returns the first value of key, in canonical or lower-case form.
func (c headerCarrier) Get(key string) string {
	if vs := c[canonicalKey(key)]; len(vs) > 0 {
		return vs[0]
	}
	if vs := c[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Set sets key, in canonical form.
func (c headerCarrier) Set(key, value string) {
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
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// ExtractTrace returns ctx carrying the trace context of h's traceparent
// and tracestate, if it has a valid traceparent: what the W3C propagator
// (propagation.TraceContext) extracts, read in one pass since every
// delivery is read for it. A traceparent EnsureTraceparent made comes out
// sampled, so a parent-based sampler keeps the spans of its alert.
func ExtractTrace(ctx context.Context, h nats.Header) context.Context {
	tp := Traceparent(h)
	cfg, ok := parseTraceparent(tp)
	if !ok {
		return ctx
	}
	if madeTraceparent(tp) {
		cfg.TraceFlags = cfg.TraceFlags.WithSampled(true)
	}
	if ts := headerCarrier(h).Get("tracestate"); ts != "" {
		// As the propagator does: a bad tracestate leaves the trace.
		cfg.TraceState, _ = trace.ParseTraceState(ts)
	}
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(cfg))
}

// EnsureTraceparent gives h a W3C traceparent: kept if h has a valid one,
// else the span context of ctx, else a new random trace. So every alert can
// be followed from its publish through retries to its dead letter, whether or
// not the publisher traces. It runs for every alert published: the check
// and the new trace cost no context, carrier or builder.
//
// A new trace goes out with its sampled flag clear, because nats-server
// reads every header of a message whose traceparent is sampled into a map
// (for its message tracing), and with the trace id's second half as its
// parent span id, which a publisher's random span id matches once in 2^64.
// ExtractTrace knows it by that and gives it back sampled.
func EnsureTraceparent(ctx context.Context, h nats.Header) {
	if validTraceparent(Traceparent(h)) {
		return
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		traceContext.Inject(trace.ContextWithSpanContext(context.Background(), sc), headerCarrier(h))
		return
	}
	// "00-<trace id>-<its second half>-00": version 0, not sampled.
	var b [55]byte
	b[0], b[1], b[2], b[35], b[52], b[53], b[54] = '0', '0', '-', '-', '-', '0', '0'
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], rand.Uint64())
	hex.Encode(b[3:19], id[:])
	binary.BigEndian.PutUint64(id[:], rand.Uint64()|1) // never all zero
	hex.Encode(b[19:35], id[:])
	copy(b[36:52], b[19:35])
	h[traceparentKey] = []string{string(b[:])}
}

// madeTraceparent reports whether s is a traceparent EnsureTraceparent made
// for a new trace.
func madeTraceparent(s string) bool {
	return len(s) == 55 && s[:3] == "00-" && s[53:] == "00" && s[19:35] == s[36:52]
}

// traceparentKey is the canonical form of the traceparent header's key.
const traceparentKey = "Traceparent"

// validTraceparent reports whether the W3C propagator extracts a span
// context from the traceparent value s.
func validTraceparent(s string) bool {
	_, ok := parseTraceparent(s)
	return ok
}

// parseTraceparent reads a traceparent value as the W3C propagator
// (propagation.TraceContext.Extract of go.opentelemetry.io/otel) does: it
// takes lower-case hex fields of 2, 32, 16 and 2 digits, a version below
// ff, non-zero ids, and for version 00 nothing after the flags but a dash
// and no reserved flag bit; it keeps the sampled and random flags.
func parseTraceparent(s string) (cfg trace.SpanContextConfig, ok bool) {
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' || (len(s) > 55 && s[55] != '-') {
		return cfg, false
	}
	version, okv := hexByte(s[0], s[1])
	flags, okf := hexByte(s[53], s[54])
	if !okv || !okf || version == 0xff || (version == 0 && (len(s) > 56 || flags > 3)) {
		return cfg, false
	}
	if !decodeHex(cfg.TraceID[:], s[3:35]) || !decodeHex(cfg.SpanID[:], s[36:52]) || !cfg.TraceID.IsValid() || !cfg.SpanID.IsValid() {
		return cfg, false
	}
	cfg.TraceFlags = trace.TraceFlags(flags) & (trace.FlagsSampled | trace.FlagsRandom)
	cfg.Remote = true
	return cfg, true
}

// decodeHex decodes the lower-case hex digits of src into dst, and
// reports whether they all were.
func decodeHex(dst []byte, src string) bool {
	for i := range dst {
		b, ok := hexByte(src[2*i], src[2*i+1])
		if !ok {
			return false
		}
		dst[i] = b
	}
	return true
}

// hexByte decodes two lower-case hex digits.
func hexByte(hi, lo byte) (byte, bool) {
	h, l := hexDigits[hi], hexDigits[lo]
	return h<<4 | l, h|l < 0x10
}

// hexDigits maps lower-case hex digits to their value, other bytes to 0xff.
var hexDigits = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range []byte("0123456789abcdef") {
		t[c] = byte(i)
	}
	return t
}()

// Traceparent returns h's traceparent header value, or "".
func Traceparent(h nats.Header) string {
	return headerCarrier(h).Get("traceparent")
}
