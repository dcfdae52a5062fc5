package stream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestReadStatus(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topo := stream.Topology{}.WithDefaults()
	if _, err := stream.ReadStatus(ctx, conn.JS, topo); !errors.Is(err, jetstream.ErrStreamNotFound) || !strings.Contains(err.Error(), "reactor run") {
		t.Fatalf("status without streams: err = %v, want ErrStreamNotFound with a hint", err)
	}
	if err := stream.EnsureStreams(ctx, conn.JS, topo); err != nil {
		t.Fatal(err)
	}
	cons, err := stream.EnsureConsumer(ctx, conn.JS, topo, stream.ConsumerSpec{Name: "ops", AckWait: time.Minute, MaxDeliver: -1, MaxAckPending: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		streamtest.Publish(t, conn, "alerts.cpu", fmt.Sprint("id-", i), []byte("hot"))
	}
	deadLetter(t, conn, topo, "alerts.cpu", 99, "boom")
	// A group added now starts with the next alert (auto): nothing to do.
	if _, err := stream.EnsureConsumer(ctx, conn.JS, topo, stream.ConsumerSpec{Name: "late", AckWait: time.Minute, MaxDeliver: -1, MaxAckPending: 100}); err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second)) // in flight, never acked
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
	}

	st, err := stream.ReadStatus(ctx, conn.JS, topo)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	st.Server = conn.ServerStatus()
	if st.Alerts.Name != "ALERTS" || st.Alerts.Messages != 5 || st.Alerts.LastSeq != 5 || st.Alerts.FirstTime.IsZero() ||
		st.Alerts.MaxAgeSeconds != (7*24*time.Hour).Seconds() || deref(st.Alerts.LastMinute) != 5 || deref(st.Alerts.LastHour) != 5 {
		t.Errorf("alerts = %+v", st.Alerts)
	}
	if st.DLQ.Messages != 1 || deref(st.DLQ.LastHour) != 1 {
		t.Errorf("dlq = %+v", st.DLQ)
	}
	if len(st.Groups) != 2 {
		t.Fatalf("groups = %+v, want two (the readers of the rates are not groups)", st.Groups)
	}
	if g := st.Groups[0]; g.Name != "late" || g.Backlog != 0 || !g.OldestUnsettled.IsZero() || g.Start != "new (auto: the stream has groups)" || g.FilterSubjects != nil {
		t.Errorf("group late = %+v", g)
	}
	g := st.Groups[1]
	if g.Name != "ops" || g.AckPending != 2 || g.NumPending != 3 || g.Backlog != 5 || g.Delivered != 2 || g.AckWaitSeconds != 60 ||
		g.Start != "all (auto: first group)" || g.OldestUnsettledSeq != 1 || !g.OldestUnsettled.Equal(st.Alerts.FirstTime) {
		t.Errorf("group ops = %+v", g)
	}
	if !st.Server.Embedded || st.Server.DataDir == "" || !strings.HasPrefix(st.Server.URL, "nats://127.0.0.1:") || st.Server.Version == "" {
		t.Errorf("server = %+v", st.Server)
	}

	js, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"alerts":{"name":"ALERTS","messages":5`, `"backlog":5`, `"oldest_unsettled":"`, `"start":"all (auto: first group)"`, `"last_minute":5`, `"ack_pending":2`, `"num_pending":3`, `"redelivered":0`, `"waiting":`, `"data_dir":`, `"first_time":"`} {
		if !strings.Contains(string(js), key) {
			t.Errorf("status JSON lacks %s: %s", key, js)
		}
	}
	// The consumers that counted the rates are gone.
	s, err := conn.JS.Stream(ctx, topo.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Consumers; n != 2 {
		t.Errorf("alert stream has %d consumers after status, want the 2 groups", n)
	}
}

func deref(p *uint64) uint64 {
	if p == nil {
		return 1 << 63
	}
	return *p
}
