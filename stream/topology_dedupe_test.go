package stream_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// Work keeps no duplicate window of its own (sourcing deduplicates by the
// history's sequence), and a Work stream created with one by an older
// reactor is updated in place.
func TestWorkStreamHasNoDuplicateWindow(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topo := stream.Topology{}.WithDefaults()
	if _, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: topo.History, Subjects: topo.Subjects, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	old := jetstream.StreamConfig{Name: topo.Work, Retention: jetstream.WorkQueuePolicy, Duplicates: 2 * time.Minute,
		Sources: []*jetstream.StreamSource{{Name: topo.History}}}
	if _, err := conn.JS.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := stream.EnsureStreams(ctx, conn.JS, topo); err != nil {
		t.Fatalf("ensure streams over an older work stream: %v", err)
	}
	for name, want := range map[string]time.Duration{topo.History: topo.DuplicateWindow, topo.Work: 0} {
		s, err := conn.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Duplicates; got != want {
			t.Errorf("%s: duplicate window %s, want %s", name, got, want)
		}
	}
	streamtest.Publish(t, conn, "alerts.x", "a", []byte("{}"))
	streamtest.Publish(t, conn, "alerts.x", "a", []byte("{}")) // deduplicated by the history
	streamtest.Publish(t, conn, "alerts.x", "b", []byte("{}"))
	// Sourcing keeps the order: once "b" is in Work, a copy of the second
	// "a" would be too.
	var msgs uint64
	streamtest.Eventually(t, 5*time.Second, func() bool {
		s, err := conn.JS.Stream(ctx, topo.Work)
		if err != nil {
			return false
		}
		msgs = s.CachedInfo().State.Msgs
		return s.CachedInfo().State.LastSeq >= 2
	}, "work stream sources both alerts")
	if msgs != 2 {
		t.Errorf("work stream holds %d alerts, want 2", msgs)
	}
}
