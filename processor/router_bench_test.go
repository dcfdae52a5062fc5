package processor_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/reactor-alerts/reactor/processor"
)

// benchRouter is a router shaped like a real deployment: a few dozen literal
// routes, wildcard routes of every rank, and a catch-all.
func benchRouter() *processor.Router {
	r := processor.NewRouter()
	noop := processor.HandlerFunc(func(context.Context, *processor.Message) error { return nil })
	for i := range 32 {
		r.Handle(fmt.Sprintf("alerts.service%d.down", i), noop)
	}
	r.Handle("alerts.terminator_detected", noop)
	r.Handle("alerts.cpu.*", noop)
	r.Handle("alerts.*.high", noop)
	r.Handle("alerts.disk.*.full", noop)
	r.Handle("alerts.net.>", noop)
	r.Handle("alerts.>", noop)
	return r
}

// routerCases are subjects that hit each kind of route, with the pattern
// that must win.
var routerCases = []struct {
	name, subject, pattern string
}{
	{"literal", "alerts.terminator_detected", "alerts.terminator_detected"},
	{"literal_among_many", "alerts.service17.down", "alerts.service17.down"},
	{"star", "alerts.cpu.load", "alerts.cpu.*"},
	{"star_first", "alerts.mem.high", "alerts.*.high"},
	{"star_middle", "alerts.disk.sda1.full", "alerts.disk.*.full"},
	{"tail", "alerts.net.eth0.errors.rx", "alerts.net.>"},
	{"catch_all", "alerts.something.else.entirely", "alerts.>"},
}

func BenchmarkRouterRoute(b *testing.B) {
	r := benchRouter()
	for _, c := range routerCases {
		m := processor.NewMessage(c.subject, nil, nil, processor.MessageInfo{})
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, p := r.Route(m); p != c.pattern {
					b.Fatal("wrong pattern")
				}
			}
		})
	}
}

func BenchmarkRouterProcess(b *testing.B) {
	r := benchRouter()
	ctx := context.Background()
	for _, c := range routerCases {
		m := processor.NewMessage(c.subject, []byte("{}"), nil, processor.MessageInfo{})
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Process(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRouterProcessParallel(b *testing.B) {
	r := benchRouter()
	ctx := context.Background()
	m := processor.NewMessage("alerts.cpu.load", []byte("{}"), nil, processor.MessageInfo{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := r.Process(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRouterMatchDoesNotAllocate pins the benchmarks' promise: routing a
// message to a literal or wildcard route allocates nothing.
func TestRouterMatchDoesNotAllocate(t *testing.T) {
	r := benchRouter()
	ctx := context.Background()
	for _, c := range routerCases {
		m := processor.NewMessage(c.subject, nil, nil, processor.MessageInfo{})
		if _, got := r.Route(m); got != c.pattern {
			t.Fatalf("%s: %q matched %q, want %q", c.name, c.subject, got, c.pattern)
		}
		if n := testing.AllocsPerRun(1000, func() { _, _ = r.Route(m) }); n != 0 {
			t.Errorf("%s: Route allocates %.1f times per call, want 0", c.name, n)
		}
		if n := testing.AllocsPerRun(1000, func() { _ = r.Process(ctx, m) }); n != 0 {
			t.Errorf("%s: Process allocates %.1f times per call, want 0", c.name, n)
		}
	}
}
