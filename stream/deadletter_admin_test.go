package stream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// deadLetter stores a dead letter of subject in the DLQ, as the processor
// does, and returns its DLQ sequence.
func deadLetter(t *testing.T, conn *stream.Conn, topo stream.Topology, subject string, seq uint64, errText string) uint64 {
	t.Helper()
	d := stream.DeadLetter{
		Subject:    subject,
		Data:       []byte(fmt.Sprintf(`{"summary":"alert %d"}`, seq)),
		Header:     nats.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
		Reason:     stream.ReasonPermanent,
		Error:      errText,
		Entry:      "alerts.>",
		Stream:     topo.Alerts,
		Sequence:   seq,
		Group:      "reactor",
		Deliveries: 1,
		MsgID:      fmt.Sprintf("id-%d", seq),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := stream.PublishDeadLetter(ctx, conn.JS, topo, d); err != nil {
		t.Fatalf("store dead letter: %v", err)
	}
	s, err := conn.JS.Stream(ctx, topo.DLQ)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.LastSeq
}

func TestDLQListGetRedrivePurge(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	ctx := context.Background()
	q := stream.NewDLQ(conn.JS, topo)

	s1 := deadLetter(t, conn, topo, "alerts.disk", 1, "exec page: exit status 1\nline two")
	s2 := deadLetter(t, conn, topo, "alerts.cpu.high", 2, "boom")
	s3 := deadLetter(t, conn, topo, "alerts.cpu.low", 3, "bang")

	all, total, err := q.List(ctx, "", 0)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(all) != 3 || total != 3 || all[0].DLQSequence != s3 || all[2].DLQSequence != s1 {
		t.Fatalf("list all: %d entries (total %d), want 3, newest first", len(all), total)
	}
	if all[2].Subject != "alerts.disk" || all[2].Error != "exec page: exit status 1\nline two" || all[2].Stored.IsZero() {
		t.Errorf("oldest entry = %+v", all[2])
	}
	cpu, total, err := q.List(ctx, "alerts.cpu.>", 0)
	if err != nil || len(cpu) != 2 || total != 2 || cpu[0].DLQSequence != s3 {
		t.Fatalf("list alerts.cpu.>: %d entries, total %d, err %v; want 2", len(cpu), total, err)
	}
	one, total, err := q.List(ctx, "", 1)
	if err != nil || len(one) != 1 || total != 3 || one[0].DLQSequence != s3 {
		t.Fatalf("list limit 1: %d entries, total %d, err %v; want the newest of 3", len(one), total, err)
	}
	none, total, err := q.List(ctx, "alerts.nothing", 0)
	if err != nil || len(none) != 0 || total != 0 {
		t.Fatalf("list of a subject without dead letters: %d, %d, %v", len(none), total, err)
	}

	got, err := q.Get(ctx, s2)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Subject != "alerts.cpu.high" || got.Error != "boom" || got.RawHeader.Get(stream.HeaderReason) != stream.ReasonPermanent {
		t.Errorf("get = %+v", got)
	}
	if _, err := q.Get(ctx, 99); !errors.Is(err, stream.ErrDeadLetterNotFound) {
		t.Errorf("get 99: err = %v, want ErrDeadLetterNotFound", err)
	}

	red, err := q.Redrive(ctx, s2)
	if err != nil {
		t.Fatalf("redrive: %v", err)
	}
	if red.Subject != "alerts.cpu.high" || red.Group != "reactor" || red.StoredSubject != "redrive.reactor.alerts.cpu.high" ||
		red.Stream != topo.Alerts || red.Sequence == 0 || red.Duplicate {
		t.Errorf("redrive = %+v", red)
	}
	hist, err := conn.JS.Stream(ctx, topo.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hist.GetMsg(ctx, red.Sequence)
	if err != nil {
		t.Fatalf("redriven alert not in the alert stream: %v", err)
	}
	if raw.Subject != red.StoredSubject {
		t.Errorf("redriven alert stored on %s, want the group's redrive subject %s", raw.Subject, red.StoredSubject)
	}
	if raw.Header.Get(stream.HeaderRedrivenFrom) != fmt.Sprint(s2) || raw.Header.Get(nats.MsgIdHdr) != red.MsgID ||
		red.MsgID == "id-2" || raw.Header.Get("Traceparent") == "" || string(raw.Data) != `{"summary":"alert 2"}` {
		t.Errorf("redriven message: headers %v data %s", raw.Header, raw.Data)
	}
	if _, err := q.Get(ctx, s2); !errors.Is(err, stream.ErrDeadLetterNotFound) {
		t.Errorf("dead letter still in the DLQ after redrive: %v", err)
	}
	if _, err := q.Redrive(ctx, s2); !errors.Is(err, stream.ErrDeadLetterNotFound) {
		t.Errorf("second redrive: err = %v, want ErrDeadLetterNotFound", err)
	}

	purged, err := q.Purge(ctx, s1)
	if err != nil || purged.Subject != "alerts.disk" {
		t.Fatalf("purge: %+v, %v", purged, err)
	}
	n, err := q.PurgeAll(ctx, "")
	if err != nil || n != 1 {
		t.Fatalf("purge all: %d, %v; want 1 (s3)", n, err)
	}
	if left, _, _ := q.List(ctx, "", 0); len(left) != 0 {
		t.Errorf("%d dead letters left after purge all", len(left))
	}
}

func TestDLQRedriveKeepsDeadLetterWhenPublishFails(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seq := deadLetter(t, conn, topo, "alerts.x", 7, "boom")
	// Without the alert stream, the publish gets no PubAck.
	if err := conn.JS.DeleteStream(ctx, topo.Alerts); err != nil {
		t.Fatal(err)
	}
	q := stream.NewDLQ(conn.JS, topo)
	if _, err := q.Redrive(ctx, seq); err == nil {
		t.Fatal("redrive to a subject no stream stores succeeded")
	}
	if _, err := q.Get(ctx, seq); err != nil {
		t.Fatalf("dead letter deleted although the redrive was not acknowledged: %v", err)
	}
}

func TestDLQRedriveAllAndPurgeAllBySubject(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	ctx := context.Background()
	q := stream.NewDLQ(conn.JS, topo)
	for i := range 4 {
		deadLetter(t, conn, topo, "alerts.a", uint64(10+i), "x")
	}
	keep := deadLetter(t, conn, topo, "alerts.b", 20, "y")

	var seen []stream.Redriven
	ok, failed, err := q.RedriveAll(ctx, "alerts.a", func(r stream.Redriven, err error) {
		if err != nil {
			t.Errorf("redrive %d: %v", r.DLQSequence, err)
		}
		seen = append(seen, r)
	})
	if err != nil || ok != 4 || failed != 0 || len(seen) != 4 {
		t.Fatalf("redrive all: ok %d failed %d err %v, %d callbacks; want 4 ok", ok, failed, err, len(seen))
	}
	left, _, err := q.List(ctx, "", 0)
	if err != nil || len(left) != 1 || left[0].DLQSequence != keep {
		t.Fatalf("after redriving alerts.a: %d left (%v), want only alerts.b", len(left), err)
	}
	if n, err := q.PurgeAll(ctx, "alerts.a"); err != nil || n != 0 {
		t.Errorf("purge all alerts.a: %d, %v; want 0", n, err)
	}
	if n, err := q.PurgeAll(ctx, "alerts.b"); err != nil || n != 1 {
		t.Errorf("purge all alerts.b: %d, %v; want 1", n, err)
	}
}

func TestReaderBounds(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	read := func(opts stream.ReadOptions, during func()) []uint64 {
		t.Helper()
		r, err := stream.NewReader(ctx, conn.JS, topo.Alerts, opts)
		if err != nil {
			t.Fatalf("reader: %v", err)
		}
		defer r.Close()
		var seqs []uint64
		for {
			m, err := r.Next(ctx)
			if errors.Is(err, io.EOF) {
				return seqs
			}
			if err != nil {
				t.Fatalf("next: %v", err)
			}
			seqs = append(seqs, m.Sequence)
			if during != nil {
				during()
				during = nil
			}
		}
	}

	if got := read(stream.ReadOptions{}, nil); len(got) != 0 {
		t.Fatalf("empty stream: read %v", got)
	}
	for i := range 5 {
		subject := "alerts.a"
		if i%2 == 1 {
			subject = "alerts.b"
		}
		streamtest.Publish(t, conn, subject, fmt.Sprint("id-", i), []byte("x"))
	}
	// More alerts stored during the read are not part of it.
	extra := 0
	got := read(stream.ReadOptions{}, func() {
		for i := range 3 {
			streamtest.Publish(t, conn, "alerts.a", fmt.Sprint("late-", i), []byte("x"))
			extra++
		}
	})
	if fmt.Sprint(got) != "[1 2 3 4 5]" || extra != 3 {
		t.Errorf("read all = %v, want [1 2 3 4 5]", got)
	}
	if got := read(stream.ReadOptions{FilterSubjects: []string{"alerts.b"}}, nil); fmt.Sprint(got) != "[2 4]" {
		t.Errorf("read alerts.b = %v, want [2 4]", got)
	}
	if got := read(stream.ReadOptions{StartSeq: 7}, nil); fmt.Sprint(got) != "[7 8]" {
		t.Errorf("read from 7 = %v, want [7 8]", got)
	}
	if got := read(stream.ReadOptions{StartSeq: 100}, nil); len(got) != 0 {
		t.Errorf("read from past the end = %v", got)
	}
	if got := read(stream.ReadOptions{FilterSubjects: []string{"alerts.none"}}, nil); len(got) != 0 {
		t.Errorf("read of a subject without alerts = %v", got)
	}
	if got := read(stream.ReadOptions{StartTime: time.Now().Add(time.Hour)}, nil); len(got) != 0 {
		t.Errorf("read from the future = %v", got)
	}
	if got := read(stream.ReadOptions{Until: time.Now().Add(-time.Hour)}, nil); len(got) != 0 {
		t.Errorf("read until an hour ago = %v", got)
	}
	if _, err := stream.NewReader(ctx, conn.JS, topo.Alerts, stream.ReadOptions{StartSeq: 1, StartTime: time.Now()}); err == nil {
		t.Error("reader from a sequence and a time: no error")
	}
}

// List with a limit returns the newest dead letters, newest first, also
// when deleted ones leave gaps and a subject filter skips most of them.
func TestDLQListNewest(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	ctx := context.Background()
	q := stream.NewDLQ(conn.JS, topo)
	var db []uint64 // the dead letters of alerts.db, oldest first
	for i := range 40 {
		subject := "alerts.web"
		if i%7 == 3 {
			subject = "alerts.db"
		}
		seq := deadLetter(t, conn, topo, subject, uint64(i+1), "boom")
		if i >= 30 && i%2 == 0 && subject == "alerts.web" {
			if _, err := q.Purge(ctx, seq); err != nil { // gaps among the newest
				t.Fatal(err)
			}
			continue
		}
		if subject == "alerts.db" {
			db = append(db, seq)
		}
	}
	all, total, err := q.List(ctx, "", 0)
	if err != nil || uint64(len(all)) != total {
		t.Fatalf("list all: %d of %d, %v", len(all), total, err)
	}
	seqs := func(es []stream.DLQEntry) []uint64 {
		var out []uint64
		for _, e := range es {
			out = append(out, e.DLQSequence)
		}
		return out
	}
	for _, limit := range []int{1, 3, 10, 35, 100} {
		got, n, err := q.List(ctx, "", limit)
		want := seqs(all)[:min(limit, len(all))]
		if err != nil || n != total || !slices.Equal(seqs(got), want) {
			t.Errorf("limit %d: %v (total %d, %v), want %v (total %d)", limit, seqs(got), n, err, want, total)
		}
	}
	slices.Reverse(db)
	for _, limit := range []int{1, 2, 5, 0} {
		got, n, err := q.List(ctx, "alerts.db", limit)
		want := db
		if limit > 0 {
			want = db[:min(limit, len(db))]
		}
		if err != nil || n != uint64(len(db)) || !slices.Equal(seqs(got), want) {
			t.Errorf("alerts.db, limit %d: %v (total %d, %v), want %v (total %d)", limit, seqs(got), n, err, want, len(db))
		}
	}
}

// TestDeadLettersOfTwoGroups: two groups that both dead-letter one alert
// each keep their dead letter; one group dead-lettering it twice (a crash
// before the termination) keeps one.
func TestDeadLettersOfTwoGroups(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	ctx := context.Background()
	for _, group := range []string{"pager", "audit", "pager"} {
		d := stream.DeadLetter{Subject: "alerts.x", Data: []byte("x"), Reason: stream.ReasonPermanent, Stream: topo.Alerts, Sequence: 7, Group: group, Deliveries: 1}
		if err := stream.PublishDeadLetter(ctx, conn.JS, topo, d); err != nil {
			t.Fatal(err)
		}
	}
	entries, total, err := stream.NewDLQ(conn.JS, topo).List(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]int{}
	for _, e := range entries {
		groups[e.Group]++
	}
	if total != 2 || groups["pager"] != 1 || groups["audit"] != 1 {
		t.Errorf("dead letters %d, by group %v; want one of each group", total, groups)
	}
}
