package stream_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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
	cfg := s.CachedInfo().Config
	if cfg.Retention != jetstream.LimitsPolicy || cfg.Discard != jetstream.DiscardNew ||
		!slices.Equal(cfg.Subjects, []string{"alerts.>", "redrive.>"}) || cfg.Duplicates != 2*time.Minute {
		t.Errorf("alert stream: retention %s discard %s subjects %v duplicates %s; want limits, discard new, alerts.> and redrive.>, 2m",
			cfg.Retention, cfg.Discard, cfg.Subjects, cfg.Duplicates)
	}
	topo.MaxBytes = 1 << 20
	if err := stream.EnsureStreams(ctx, conn.JS, topo); err != nil {
		t.Fatalf("ensure with a size limit: %v", err)
	}
	if s, err = conn.JS.Stream(ctx, "ALERTS"); err != nil || s.CachedInfo().Config.MaxBytes != 1<<20 {
		t.Errorf("max bytes after the update: %v", err)
	}
	names := conn.JS.StreamNames(ctx)
	var all []string
	for n := range names.Name() {
		all = append(all, n)
	}
	slices.Sort(all)
	if !slices.Equal(all, []string{"ALERTS", "ALERTS_DLQ"}) {
		t.Errorf("streams %v, want ALERTS and ALERTS_DLQ only", all)
	}
}

// A full alert stream refuses new alerts: the publisher gets the error, and
// nothing a group has not settled is discarded.
func TestFullAlertStreamRefusesNewAlerts(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	ctx := context.Background()
	topo := stream.Topology{MaxBytes: 4096}.WithDefaults()
	if err := stream.EnsureStreams(ctx, conn.JS, topo); err != nil {
		t.Fatal(err)
	}
	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{})
	var stored int
	var err error
	for i := range 100 {
		msg := nats.NewMsg("alerts.x")
		msg.Data = []byte(strings.Repeat("x", 200))
		msg.Header.Set(nats.MsgIdHdr, fmt.Sprint("id-", i))
		if _, err = pub.Publish(ctx, msg); err != nil {
			break
		}
		stored++
	}
	if err == nil || stored == 0 {
		t.Fatalf("published %d alerts of 200 B into 4 KiB without an error", stored)
	}
	s, _ := conn.JS.Stream(ctx, topo.Alerts)
	if st := s.CachedInfo().State; st.FirstSeq != 1 || st.Msgs != uint64(stored) {
		t.Errorf("stream first seq %d, %d msgs after %d stored: an old alert was discarded", st.FirstSeq, st.Msgs, stored)
	}
	t.Logf("stored %d alerts, then: %v", stored, err)
}

func TestEnsureStreamsExplainsIncompatibleChange(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	ctx := context.Background()
	if _, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "ALERTS", Subjects: []string{"alerts.>"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	err := stream.EnsureStreams(ctx, conn.JS, stream.Topology{})
	if !errors.Is(err, stream.ErrIncompatible) {
		t.Fatalf("err = %v, want ErrIncompatible", err)
	}
	for _, want := range []string{"ALERTS", "retention", "delete it"} {
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
	if info.Config.DeliverPolicy != jetstream.DeliverAllPolicy || len(info.Config.FilterSubjects) != 0 || info.Config.FilterSubject != "" {
		t.Errorf("consumer deliver %s filters %v %q, want all and none (the whole stream)", info.Config.DeliverPolicy, info.Config.FilterSubjects, info.Config.FilterSubject)
	}
}

// Groups whose filters overlap each get every alert they match.
func TestOverlappingGroupsFanOut(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	ctx := context.Background()
	for _, spec := range []stream.ConsumerSpec{
		{Name: "all", AckWait: time.Second, MaxDeliver: -1, MaxAckPending: 10},
		{Name: "cpu", AckWait: time.Second, MaxDeliver: -1, MaxAckPending: 10, FilterSubjects: []string{"alerts.cpu.>"}},
		{Name: "cpu2", AckWait: time.Second, MaxDeliver: -1, MaxAckPending: 10, FilterSubjects: []string{"alerts.cpu.high", "alerts.disk"}},
	} {
		if _, err := stream.EnsureConsumer(ctx, conn.JS, topo, spec); err != nil {
			t.Fatalf("group %s: %v", spec.Name, err)
		}
	}
	streamtest.Publish(t, conn, "alerts.cpu.high", "1", []byte("{}"))
	streamtest.Publish(t, conn, "alerts.cpu.low", "2", []byte("{}"))
	streamtest.Publish(t, conn, "alerts.disk", "3", []byte("{}"))
	// The server counts a consumer's pending messages as the stream
	// signals it, after the PubAck.
	for group, want := range map[string]uint64{"all": 3, "cpu": 2, "cpu2": 2} {
		streamtest.Eventually(t, 5*time.Second, func() error {
			if pending, _, _ := streamtest.ConsumerPending(conn.JS, topo.Alerts, group); pending != want {
				return fmt.Errorf("%d pending, want %d", pending, want)
			}
			return nil
		}, "group %s's pending count", group)
	}
}

// A group made when every group filtered the alert subjects and its
// redrive subject takes the whole stream once updated, from where it was.
func TestEnsureConsumerDropsTheOldFilters(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	ctx := context.Background()
	if _, err := conn.JS.CreateConsumer(ctx, topo.Alerts, jetstream.ConsumerConfig{
		Durable: "g", AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: []string{"alerts.>", "redrive.g.>"},
	}); err != nil {
		t.Fatal(err)
	}
	streamtest.Publish(t, conn, "alerts.a", "1", []byte("{}"))
	streamtest.Publish(t, conn, "alerts.a", "2", []byte("{}"))
	c, err := conn.JS.Consumer(ctx, topo.Alerts, "g")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	for m := range msgs.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c, err = stream.EnsureConsumer(ctx, conn.JS, topo, stream.ConsumerSpec{Name: "g", AckWait: time.Second, MaxDeliver: -1, MaxAckPending: 10})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Config.FilterSubjects) != 0 || info.AckFloor.Stream != 1 || info.NumPending != 1 {
		t.Errorf("filters %v, ack floor %d, %d pending; want none, 1 and 1", info.Config.FilterSubjects, info.AckFloor.Stream, info.NumPending)
	}
	// The alert subjects asked for by name are every alert subject.
	c, err = stream.EnsureConsumer(ctx, conn.JS, topo, stream.ConsumerSpec{Name: "g", AckWait: time.Second, MaxDeliver: -1, MaxAckPending: 10, FilterSubjects: topo.Subjects})
	if err != nil {
		t.Fatal(err)
	}
	if f := c.CachedInfo().Config.FilterSubjects; len(f) != 0 {
		t.Errorf("filters %v for a group of the topology's subjects, want none", f)
	}
}

func TestRedrivenForOther(t *testing.T) {
	t.Parallel()
	topo := stream.Topology{}.WithDefaults()
	for subject, want := range map[string]bool{
		"alerts.cpu":               false,
		"redrive.g.alerts.cpu":     false,
		"redrive.gg.alerts.cpu":    true,
		"redrive.pager.alerts.cpu": true,
		"redrivex.g.alerts.cpu":    false,
		"redrive":                  false,
	} {
		if got := topo.RedrivenForOther("g", subject); got != want {
			t.Errorf("RedrivenForOther(g, %q) = %v, want %v", subject, got, want)
		}
	}
	if !(stream.Topology{RedrivePrefix: "rd"}).RedrivenForOther("g", "rd.h.alerts.x") {
		t.Error("a configured redrive prefix is not used")
	}
}

func TestGroupSubjects(t *testing.T) {
	t.Parallel()
	topo := stream.Topology{}.WithDefaults()
	for _, tc := range []struct {
		filters []string
		filter  string
		want    []string
	}{
		{nil, "", nil}, // the whole stream
		{[]string{"alerts.>", "redrive.g.>"}, "", nil}, // every subject, made before
		{[]string{"alerts.cpu", "redrive.g.>"}, "", []string{"alerts.cpu"}},
		{nil, "alerts.disk", []string{"alerts.disk"}},
		{[]string{"alerts.cpu", "redrive.h.>"}, "", []string{"alerts.cpu", "redrive.h.>"}},
	} {
		info := &jetstream.ConsumerInfo{Name: "g", Config: jetstream.ConsumerConfig{FilterSubjects: tc.filters, FilterSubject: tc.filter}}
		if got := stream.GroupSubjects(topo, info); !slices.Equal(got, tc.want) {
			t.Errorf("GroupSubjects(%v %q) = %v, want %v", tc.filters, tc.filter, got, tc.want)
		}
	}
}
