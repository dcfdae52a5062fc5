package stream_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/embedded"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestOpenNoServer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A port nothing listens on: start and stop a server to find one.
	srv, err := embedded.Start(embedded.Config{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	srv.Shutdown()
	_, err = stream.Open(ctx, stream.Config{URL: "nats://user:hunter2@" + url[len("nats://"):]})
	if !errors.Is(err, stream.ErrNoServer) {
		t.Fatalf("err = %v, want ErrNoServer", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestPublisherDeduplicates(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	p := stream.NewPublisher(conn.JS, stream.PublisherConfig{})
	ctx := context.Background()
	msg := nats.NewMsg("alerts.cpu")
	msg.Header.Set(nats.MsgIdHdr, "same-id")
	first, err := p.Publish(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Publish(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Duplicate || second.Sequence != first.Sequence {
		t.Errorf("second publish: duplicate=%v seq=%d, want a duplicate of seq %d", second.Duplicate, second.Sequence, first.Sequence)
	}
	if _, err := p.Publish(ctx, nats.NewMsg("alerts.cpu")); !errors.Is(err, stream.ErrNoMsgID) {
		t.Errorf("publish without id: err = %v, want ErrNoMsgID", err)
	}
	s, _ := conn.JS.Stream(ctx, topo.Alerts)
	if info, _ := s.Info(ctx); info.State.Msgs != 1 {
		t.Errorf("history has %d messages, want 1", info.State.Msgs)
	}
}

func TestPublishBatch(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	const n = 5000
	msgs := make([]*nats.Msg, n+1)
	for i := range n {
		msgs[i] = nats.NewMsg("alerts.batch")
		msgs[i].Header.Set(nats.MsgIdHdr, "id-"+strconv.Itoa(i))
	}
	msgs[n] = nats.NewMsg("alerts.batch") // no id: reported, not sent
	seen := make([]bool, n+1)
	failed := stream.NewPublisher(conn.JS, stream.PublisherConfig{}).PublishBatch(context.Background(), msgs, func(r stream.Result) {
		if seen[r.Index] {
			t.Errorf("result for %d reported twice", r.Index)
		}
		seen[r.Index] = true
		if r.Index < n && (r.Err != nil || r.Ack == nil) {
			t.Errorf("message %d: %v", r.Index, r.Err)
		}
	})
	if failed != 1 {
		t.Errorf("failed = %d, want 1 (the message without id)", failed)
	}
	for i, ok := range seen {
		if !ok {
			t.Errorf("no result for message %d", i)
		}
	}
	s, _ := conn.JS.Stream(context.Background(), topo.Alerts)
	if info, _ := s.Info(context.Background()); info.State.Msgs != n {
		t.Errorf("history has %d messages, want %d", info.State.Msgs, n)
	}
}
