package stream_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/embedded"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestStoreFullStream fills an alert stream that has a size limit: the
// publish that does not fit fails at once with ErrStoreFull (one attempt:
// retrying a full store only delays the answer), status says the stream is
// full, and once room is made the same publisher stores again.
func TestStoreFullStream(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopologyWith(t, stream.Topology{MaxBytes: 16 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{})
	n, err := fill(ctx, pub, 1000)
	var full *stream.StoreFullError
	if !errors.As(err, &full) || !errors.Is(err, stream.ErrStoreFull) || full.Limit != stream.LimitStream {
		t.Fatalf("publish %d into a full stream: err = %v, want a *StoreFullError of the stream", n+1, err)
	}
	if msg := err.Error(); strings.Contains(msg, "attempts") || strings.Contains(msg, "API error") {
		t.Errorf("the full stream was retried, or said in the server's raw words: %v", err)
	}
	st, err := stream.ReadStatus(ctx, conn.JS, topo)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Alerts.Full || st.Alerts.MaxBytes != 16<<10 || st.Alerts.Messages != uint64(n) {
		t.Errorf("alert stream of status = %+v, want full at 16 KiB with %d alerts", st.Alerts, n)
	}
	if st.Store.Full || st.Store.Used < st.Alerts.Bytes || st.Store.LimitOf != stream.LimitServer || st.Store.Limit <= st.Store.Used {
		t.Errorf("store of status = %+v, want the embedded server's limit, not full", st.Store)
	}

	// Room comes back: the publisher stores again, no reconnect, no new
	// publisher.
	s, err := conn.JS.Stream(ctx, topo.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := fill(ctx, pub, 1); err != nil {
		t.Fatalf("publish after the purge: %v", err)
	}
	if st, err = stream.ReadStatus(ctx, conn.JS, topo); err != nil || st.Alerts.Full {
		t.Errorf("status after the purge: full %v, err %v", st.Alerts.Full, err)
	}
}

// fill publishes alerts of about 300 bytes, up to n, and returns how many
// were stored and the error that stopped it.
func fill(ctx context.Context, pub *stream.Publisher, n int) (int, error) {
	payload := []byte(strings.Repeat("x", 300))
	for i := range n {
		msg := nats.NewMsg("alerts.fill")
		msg.Data = payload
		msg.Header.Set(nats.MsgIdHdr, fmt.Sprintf("fill-%d-%d", time.Now().UnixNano(), i))
		if _, err := pub.Publish(ctx, msg); err != nil {
			return i, err
		}
	}
	return n, nil
}

// TestStoreFullServer fills the embedded server's own JetStream storage on
// a small filesystem (tmpfs): nats-server takes 75% of the free space at
// start. The publish that does not fit fails at once with the server's
// limit named, status reads the server's limit and says the store is full,
// and room made by a purge lets the same publisher store again.
func TestStoreFullServer(t *testing.T) {
	t.Parallel()
	dir := streamtest.Tmpfs(t, 4<<20)
	conn := streamtest.NewServerWith(t, embedded.Config{DataDir: dir})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topo := stream.Topology{}.WithDefaults()
	if err := stream.EnsureStreams(ctx, conn.JS, topo); err != nil {
		t.Fatal(err)
	}
	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{})
	n, err := fill(ctx, pub, 100_000)
	var full *stream.StoreFullError
	if !errors.As(err, &full) || full.Limit != stream.LimitServer {
		t.Fatalf("publish %d on a full server: err = %v, want a *StoreFullError of the server", n+1, err)
	}
	st, err := stream.ReadStatus(ctx, conn.JS, topo)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Store.Full || st.Store.FullOf != stream.LimitServer || st.Store.LimitOf != stream.LimitServer || st.Store.Limit == 0 || st.Store.Limit > 3<<20 {
		t.Errorf("store of status = %+v, want full at 75%% of 4 MiB", st.Store)
	}
	if st.Alerts.Full {
		t.Errorf("the alert stream has no size limit, yet status says it is full: %+v", st.Alerts)
	}
	s, err := conn.JS.Stream(ctx, topo.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := fill(ctx, pub, 1); err != nil {
		t.Fatalf("publish after the purge: %v", err)
	}
	if st, err = stream.ReadStatus(ctx, conn.JS, topo); err != nil || st.Store.Full {
		t.Errorf("status after the purge: store %+v, err %v", st.Store, err)
	}
}

// TestStoreFullDisk fills the disk under an embedded server with another
// file: JetStream's limit is not reached, but its write fails with "no
// space left on device", and nats-server answers no publish to that
// stream until it restarts. Status says the disk is full, with the error.
func TestStoreFullDisk(t *testing.T) {
	t.Parallel()
	dir := streamtest.Tmpfs(t, 8<<20)
	conn := streamtest.NewServerWith(t, embedded.Config{DataDir: filepath.Join(dir, "data")})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topo := stream.Topology{}.WithDefaults()
	if err := stream.EnsureStreams(ctx, conn.JS, topo); err != nil {
		t.Fatal(err)
	}
	st, err := stream.ReadStatus(ctx, conn.JS, topo)
	if err != nil {
		t.Fatal(err)
	}
	if st.Store.Full || st.Store.DiskFree == nil || *st.Store.DiskFree < 7<<20 {
		t.Fatalf("store of an empty server: %+v, want not full, the disk's free space known", st.Store)
	}
	// Another program fills the disk.
	hog, err := os.Create(filepath.Join(dir, "hog"))
	if err != nil {
		t.Fatal(err)
	}
	defer hog.Close()
	if _, err := hog.Write(make([]byte, 8<<20)); err == nil {
		t.Fatal("wrote 8 MiB on an 8 MiB tmpfs that holds a store: the disk is not full")
	}
	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{Attempts: 1, AttemptTimeout: 2 * time.Second})
	if n, err := fill(ctx, pub, 10_000); err == nil {
		t.Fatalf("stored %d alerts on a full disk", n)
	}
	st, err = stream.ReadStatus(ctx, conn.JS, topo)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Store.Full || st.Store.FullOf != stream.LimitDisk || !strings.Contains(st.Store.WriteError, "no space left on device") {
		t.Errorf("store of a server whose disk is full: %+v, want full of disk with the write error", st.Store)
	}
}
