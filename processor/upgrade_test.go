package processor_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// oldLayout creates the streams and consumers of reactor before one alert
// stream, with the configs it used: the history ALERTS, the work queue
// ALERTS_WORK sourcing it, and a durable consumer per group on the work
// queue (a work queue allows no overlapping filters).
func oldLayout(t *testing.T, js jetstream.JetStream, groups map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, cfg := range []jetstream.StreamConfig{
		{
			Name: "ALERTS", Description: "reactor: alert history, read by replay", Subjects: []string{"alerts.>"},
			Retention: jetstream.LimitsPolicy, MaxAge: 7 * 24 * time.Hour, Duplicates: 2 * time.Minute, Replicas: 1, Discard: jetstream.DiscardOld,
		},
		{
			Name: "ALERTS_WORK", Description: "reactor: work queue of alerts to handle, sourced from ALERTS",
			Retention: jetstream.WorkQueuePolicy, Replicas: 1, Sources: []*jetstream.StreamSource{{Name: "ALERTS"}},
		},
		{
			Name: "ALERTS_DLQ", Description: "reactor: dead letters, with the reason in their headers", Subjects: []string{"dlq.>"},
			Retention: jetstream.LimitsPolicy, Duplicates: 2 * time.Minute, Replicas: 1,
		},
	} {
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			t.Fatalf("old stream %s: %v", cfg.Name, err)
		}
	}
	for name, filter := range groups {
		if _, err := js.CreateConsumer(ctx, "ALERTS_WORK", jetstream.ConsumerConfig{
			Durable: name, Description: "reactor processing group " + name, AckPolicy: jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy, AckWait: 30 * time.Second, MaxDeliver: -1, MaxAckPending: 1000, FilterSubject: filter,
		}); err != nil {
			t.Fatalf("old consumer %s: %v", name, err)
		}
	}
}

// TestUpgradeFromWorkQueue: a store with the old two streams, a backlog in
// the work queue and part of it handled by the old code. The new processors
// handle what is left there, each group's consumer on the alert stream
// starts after the last alert the work queue received, and the work queue
// is deleted with its last group: every alert handled once, none lost.
func TestUpgradeFromWorkQueue(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	ctx := context.Background()
	oldLayout(t, conn.JS, map[string]string{"app": "alerts.app.>", "db": "alerts.db.>"})
	app, db := ids("app", 20), ids("db", 10)
	publishIDs(t, conn, "alerts.app.cpu", app)
	publishIDs(t, conn, "alerts.db.disk", db)
	streamtest.Eventually(t, 10*time.Second, func() bool { return streamtest.StreamMsgs(conn.JS, "ALERTS_WORK") == 30 }, "old work queue sourced the alerts")

	// The old code handled the first 8 alerts of app.
	old, err := conn.JS.Consumer(ctx, "ALERTS_WORK", "app")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := old.Fetch(8, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var handledOld []string
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		handledOld = append(handledOld, m.Headers().Get("Nats-Msg-Id"))
	}
	if !slices.Equal(handledOld, app[:8]) {
		t.Fatalf("old code handled %v, want the first 8", handledOld)
	}

	topo := stream.Topology{}.WithDefaults()
	newApp := runGroup(t, conn.JS, topo, "app", []string{"alerts.app.>"}, stream.Start{}, nil)
	later := ids("app-new", 5)
	publishIDs(t, conn, "alerts.app.cpu", later)
	requireOnly(t, "app", newApp.handled, slices.Concat(app[8:], later))
	streamtest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(newApp.logs.String(), "old work queue drained for this group")
	}, "app: no log line about the old work queue:\n%s", newApp.logs)
	if _, err := conn.JS.Stream(ctx, "ALERTS_WORK"); err != nil {
		t.Fatalf("the old work queue was deleted while db still has alerts in it: %v", err)
	}
	st, err := stream.ReadStatus(ctx, conn.JS, topo)
	if err != nil || st.Legacy == nil || st.Legacy.Messages != 10 {
		t.Fatalf("status during the upgrade: legacy %+v, err %v; want the old work queue with db's 10 alerts", st.Legacy, err)
	}

	dbLater := ids("db-new", 3)
	publishIDs(t, conn, "alerts.db.disk", dbLater) // stored in ALERTS only: the work queue is frozen
	newDB := runGroup(t, conn.JS, topo, "db", []string{"alerts.db.>"}, stream.Start{}, nil)
	requireOnly(t, "db", newDB.handled, slices.Concat(db, dbLater))
	streamtest.Eventually(t, 10*time.Second, func() bool {
		_, err := conn.JS.Stream(ctx, "ALERTS_WORK")
		return errors.Is(err, jetstream.ErrStreamNotFound)
	}, "the old work queue is not deleted with its last group")

	st, err = stream.ReadStatus(ctx, conn.JS, topo)
	if err != nil {
		t.Fatal(err)
	}
	if st.Legacy != nil || len(st.Groups) != 2 {
		t.Fatalf("status after the upgrade: legacy %+v, groups %+v", st.Legacy, st.Groups)
	}
	for _, g := range st.Groups {
		if g.Start != "seq:31 (upgrade: after the old work queue ALERTS_WORK)" || g.Backlog != 0 {
			t.Errorf("group %s: start %q backlog %d; want after sequence 30, the last the work queue received, and nothing left", g.Name, g.Start, g.Backlog)
		}
	}
	s, err := conn.JS.Stream(ctx, "ALERTS")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := s.CachedInfo().Config; cfg.Discard != jetstream.DiscardNew || !slices.Contains(cfg.Subjects, "redrive.>") {
		t.Errorf("alert stream not updated: discard %s, subjects %v", cfg.Discard, cfg.Subjects)
	}
}

// TestUpgradeFromDrainedWorkQueue: the old work queue is empty, everything
// handled. The new consumer starts after the last alert it received: no old
// alert runs again, every new one does.
func TestUpgradeFromDrainedWorkQueue(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	ctx := context.Background()
	oldLayout(t, conn.JS, map[string]string{"reactor": ""})
	publishIDs(t, conn, "alerts.x", ids("old", 5))
	old, err := conn.JS.Consumer(ctx, "ALERTS_WORK", "reactor")
	if err != nil {
		t.Fatal(err)
	}
	acked := 0
	streamtest.Eventually(t, 10*time.Second, func() bool {
		batch, err := old.Fetch(5, jetstream.FetchMaxWait(100*time.Millisecond))
		if err != nil {
			return false
		}
		for m := range batch.Messages() {
			if m.DoubleAck(ctx) == nil {
				acked++
			}
		}
		return acked == 5 && streamtest.StreamMsgs(conn.JS, "ALERTS_WORK") == 0
	}, "old code handled the 5 alerts")

	g := runGroup(t, conn.JS, stream.Topology{}, "reactor", nil, stream.Start{}, nil)
	fresh := ids("new", 3)
	publishIDs(t, conn, "alerts.x", fresh)
	requireOnly(t, "reactor", g.handled, fresh)
	streamtest.Eventually(t, 10*time.Second, func() bool {
		_, err := conn.JS.Stream(ctx, "ALERTS_WORK")
		return errors.Is(err, jetstream.ErrStreamNotFound)
	}, "the old work queue is not deleted")
}
