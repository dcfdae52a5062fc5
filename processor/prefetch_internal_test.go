package processor

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestBufferOrderAndGrowth: alerts come out in the order they went in,
// across the ring's wrap and its growth past the depth while it admits
// without blocking; close hands back what was left.
func TestBufferOrderAndGrowth(t *testing.T) {
	t.Parallel()
	b := newBuffer(3, 1, time.Hour, time.Hour)
	b.started(time.Now())
	meta := func(i int) *jetstream.MsgMetadata {
		return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: uint64(i)}}
	}
	next := 0
	take := func(n int) {
		t.Helper()
		for range n {
			p, ok := b.take(0)
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
	if _, ok := b.take(0); ok {
		t.Fatal("take after close returned an alert")
	}
}

// TestBufferMarksWhatWaited: mark reports the buffered alerts whose mark
// is older than the cut-off, once.
func TestBufferMarksWhatWaited(t *testing.T) {
	t.Parallel()
	b := newBuffer(4, 1, time.Hour, time.Hour)
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
	b := newBuffer(4, 1, time.Hour, time.Minute)
	arrived := time.Now()
	b.started(arrived)
	if late, _ := b.put(nil, nil); late {
		t.Fatal("an alert just pulled is late")
	}
	if p, _ := b.take(0); p.mark > time.Now().UnixNano() || p.mark < arrived.UnixNano() {
		t.Fatalf("mark %d, want the consume's start %d", p.mark, arrived.UnixNano())
	}
	b.started(arrived.Add(-2 * time.Minute)) // pulled two minutes ago
	if late, _ := b.put(nil, nil); !late {
		t.Fatal("an alert that may have waited two minutes is not late")
	}
	if p, _ := b.take(0); p.mark < arrived.UnixNano() {
		t.Fatalf("a late alert's mark %d is before the put, want it moved to now", p.mark)
	}
}

// metaOf is the metadata of delivery n of the alert of stream sequence
// seq.
func metaOf(seq, n uint64) *jetstream.MsgMetadata {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: seq}, NumDelivered: n}
}

// TestBufferRedeliveriesFirst: a redelivered alert is taken before the
// first deliveries buffered ahead of it, in the order redeliveries came.
func TestBufferRedeliveriesFirst(t *testing.T) {
	t.Parallel()
	b := newBuffer(8, 1, time.Hour, time.Hour)
	b.started(time.Now())
	for _, d := range []*jetstream.MsgMetadata{metaOf(10, 1), metaOf(11, 1), metaOf(3, 2), metaOf(12, 1), metaOf(4, 3)} {
		if _, held := b.put(nil, d); held {
			t.Fatalf("seq %d: held, want added", d.Sequence.Stream)
		}
	}
	var got []uint64
	for range 5 {
		p, _ := b.take(0)
		got = append(got, p.seq())
		b.done(0)
	}
	if want := []uint64{3, 4, 10, 11, 12}; !slices.Equal(got, want) {
		t.Fatalf("taken in order %v, want %v", got, want)
	}
}

// TestBufferDropsRedeliveryOfHeldAlert: a redelivery of an alert that is
// buffered, or that a worker runs, is not added; once the worker is done
// with it, a redelivery is.
func TestBufferDropsRedeliveryOfHeldAlert(t *testing.T) {
	t.Parallel()
	b := newBuffer(8, 2, time.Hour, time.Hour)
	b.started(time.Now())
	b.put(nil, metaOf(1, 1))
	b.put(nil, metaOf(2, 1))
	if _, held := b.put(nil, metaOf(2, 2)); !held {
		t.Fatal("redelivery of a buffered alert added")
	}
	if p, _ := b.take(1); p.seq() != 1 {
		t.Fatalf("took seq %d, want 1", p.seq())
	}
	if _, held := b.put(nil, metaOf(1, 2)); !held {
		t.Fatal("redelivery of a running alert added")
	}
	if _, held := b.put(nil, metaOf(7, 2)); held {
		t.Fatal("redelivery of an alert not held was dropped")
	}
	b.done(1)
	if _, held := b.put(nil, metaOf(1, 3)); held {
		t.Fatal("redelivery of an alert whose handler returned was dropped")
	}
	if left := b.close(); len(left) != 3 {
		t.Fatalf("close left %d alerts, want 3 (seqs 7 and 1 redelivered, 2)", len(left))
	}
}
