package stream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestWaitSourcing(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	topo := stream.Topology{}.WithDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := stream.EnsureStreams(ctx, conn.JS, topo); err != nil {
		t.Fatal(err)
	}
	if err := stream.WaitSourcing(ctx, conn.JS, topo); err != nil {
		t.Fatal(err)
	}
	// Set up: an alert published now reaches the work queue at once.
	streamtest.Publish(t, conn, "alerts.x", "a1", []byte("x"))
	streamtest.Eventually(t, time.Second, func() bool { return streamtest.StreamMsgs(conn.JS, topo.Work) == 1 }, "alert sourced")

	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	other := stream.Topology{History: "NONE", Work: "NONE_WORK"}
	if err := stream.WaitSourcing(short, conn.JS, other); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSourcing without a work stream: err = %v, want the deadline", err)
	}
}
