package stream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestPauseGroup(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec := stream.ConsumerSpec{Name: "ops", AckWait: time.Minute, MaxDeliver: -1, MaxAckPending: 100}
	if _, err := stream.EnsureConsumer(ctx, conn.JS, topo, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.PauseGroup(ctx, conn.JS, topo, "nope", time.Time{}); !errors.Is(err, stream.ErrGroupNotFound) {
		t.Fatalf("pause an unknown group: err = %v, want ErrGroupNotFound", err)
	}
	until, err := stream.PauseGroup(ctx, conn.JS, topo, "ops", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(until) < 50*365*24*time.Hour {
		t.Errorf("pause without a deadline until %s, want about a century", until)
	}
	group := func() stream.GroupStatus {
		t.Helper()
		st, err := stream.ReadStatus(ctx, conn.JS, topo)
		if err != nil || len(st.Groups) != 1 {
			t.Fatalf("status: %v, %+v", err, st)
		}
		return st.Groups[0]
	}
	if g := group(); !g.Paused || !g.PausedUntil.Equal(until) {
		t.Errorf("paused group's status = %+v, want paused until %s", g, until)
	}
	// A process of the group starting again must not resume it.
	if _, err := stream.EnsureConsumer(ctx, conn.JS, topo, spec); err != nil {
		t.Fatal(err)
	}
	if g := group(); !g.Paused {
		t.Errorf("EnsureConsumer resumed the paused group: %+v", g)
	}
	if err := stream.ResumeGroup(ctx, conn.JS, topo, "ops"); err != nil {
		t.Fatal(err)
	}
	if g := group(); g.Paused || !g.PausedUntil.IsZero() {
		t.Errorf("resumed group's status = %+v", g)
	}
}
