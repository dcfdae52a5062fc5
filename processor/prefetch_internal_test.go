package processor

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestBufferOrderAndGrowth: alerts come out in the order they went in,
// across the ring's wrap and its growth past the depth while it admits
// without blocking; close hands back what was left.
func TestBufferOrderAndGrowth(t *testing.T) {
	t.Parallel()
	b := newBuffer(3, time.Hour, time.Hour)
	b.started(time.Now())
	meta := func(i int) *jetstream.MsgMetadata {
		return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: uint64(i)}}
	}
	next := 0
	take := func(n int) {
		t.Helper()
		for range n {
			p, ok := b.take()
			if !ok || p.meta.Sequence.Stream != uint64(next) {
				t.Fatalf("took %v (ok %v), want alert %d", p.meta, ok, next)
			}
			next++
		}
	}
	for i := range 3 {
		b.put(nil, meta(i))
	}
	take(2)
	b.put(nil, meta(3))
	b.put(nil, meta(4)) // wraps around the ring
	take(1)
	b.drain() // admits past the depth: the ring grows
	for i := 5; i < 12; i++ {
		b.put(nil, meta(i))
	}
	take(5)
	left := b.close()
	if len(left) != 4 || left[0].meta.Sequence.Stream != 8 || left[3].meta.Sequence.Stream != 11 {
		t.Fatalf("close left %d alerts starting at %v, want 8 to 11", len(left), left[0].meta)
	}
	if _, ok := b.take(); ok {
		t.Fatal("take after close returned an alert")
	}
}

// TestBufferMarksWhatWaited: mark reports the buffered alerts whose mark
// is older than the cut-off, once.
func TestBufferMarksWhatWaited(t *testing.T) {
	t.Parallel()
	b := newBuffer(4, time.Hour, time.Hour)
	b.started(time.Now())
	for range 3 {
		b.put(nil, nil)
	}
	cut := time.Now().Add(time.Minute).UnixNano()
	n := 0
	b.mark(cut, cut, func(jetstream.Msg) { n++ })
	if n != 3 {
		t.Fatalf("marked %d of 3 waiting alerts", n)
	}
	n = 0
	b.mark(cut, cut, func(jetstream.Msg) { n++ })
	if n != 0 {
		t.Fatalf("marked %d alerts again right after marking them", n)
	}
}

// TestBufferLateOnlyWhenOld: put asks for an immediate mark only for an
// alert that may have waited lateAge; a younger one keeps the time it may
// have arrived, for the ticks to mark if it waits on.
func TestBufferLateOnlyWhenOld(t *testing.T) {
	t.Parallel()
	b := newBuffer(4, time.Hour, time.Minute)
	arrived := time.Now()
	b.started(arrived)
	if late := b.put(nil, nil); late {
		t.Fatal("an alert just pulled is late")
	}
	if p, _ := b.take(); p.mark > time.Now().UnixNano() || p.mark < arrived.UnixNano() {
		t.Fatalf("mark %d, want the consume's start %d", p.mark, arrived.UnixNano())
	}
	b.started(arrived.Add(-2 * time.Minute)) // pulled two minutes ago
	if late := b.put(nil, nil); !late {
		t.Fatal("an alert that may have waited two minutes is not late")
	}
	if p, _ := b.take(); p.mark < arrived.UnixNano() {
		t.Fatalf("a late alert's mark %d is before the put, want it moved to now", p.mark)
	}
}
