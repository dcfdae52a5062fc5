package stream_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestEnsureStreamsIsIdempotentAndUpdates(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	ctx := context.Background()
	topo := stream.Topology{MaxAge: time.Hour}
	for range 2 {
		if err := stream.EnsureStreams(ctx, conn.JS, topo); err != nil {
			t.Fatalf("ensure: %v", err)
		}
	}
	topo.MaxAge = 2 * time.Hour
	if err := stream.EnsureStreams(ctx, conn.JS, topo); err != nil {
		t.Fatalf("ensure with a new max age: %v", err)
	}
	s, err := conn.JS.Stream(ctx, "ALERTS")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != 2*time.Hour {
		t.Errorf("history max age %s, want 2h after the update", got)
	}
	w, err := conn.JS.Stream(ctx, "ALERTS_WORK")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := w.CachedInfo().Config; cfg.Retention != jetstream.WorkQueuePolicy || len(cfg.Sources) != 1 || cfg.Sources[0].Name != "ALERTS" {
		t.Errorf("work stream: retention %s sources %v, want a work queue sourcing ALERTS", cfg.Retention, cfg.Sources)
	}
}

func TestEnsureStreamsExplainsIncompatibleChange(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	ctx := context.Background()
	if _, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "ALERTS_WORK", Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	err := stream.EnsureStreams(ctx, conn.JS, stream.Topology{})
	if !errors.Is(err, stream.ErrIncompatible) {
		t.Fatalf("err = %v, want ErrIncompatible", err)
	}
	for _, want := range []string{"ALERTS_WORK", "retention", "delete it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestEnsureConsumerUpdatesSettings(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	ctx := context.Background()
	spec := stream.ConsumerSpec{Name: "g", AckWait: 10 * time.Second, MaxDeliver: 3, MaxAckPending: 100}
	if _, err := stream.EnsureConsumer(ctx, conn.JS, topo, spec); err != nil {
		t.Fatal(err)
	}
	spec.AckWait, spec.MaxDeliver = 20*time.Second, 7
	c, err := stream.EnsureConsumer(ctx, conn.JS, topo, spec)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.AckWait != 20*time.Second || info.Config.MaxDeliver != 7 {
		t.Errorf("consumer ack wait %s max deliver %d, want 20s and 7", info.Config.AckWait, info.Config.MaxDeliver)
	}
	// A second group overlapping the first on a work queue is refused, with
	// a hint.
	_, err = stream.EnsureConsumer(ctx, conn.JS, topo, stream.ConsumerSpec{Name: "other", AckWait: time.Second, MaxDeliver: 1, MaxAckPending: 10})
	if err == nil || !strings.Contains(err.Error(), "other") {
		t.Errorf("overlapping group: err = %v, want a refusal naming the group", err)
	}
}
