package streamtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestNetnsClusterPartition: a stream on three servers in namespaces
// keeps taking messages while one server is cut off, the one the client is
// connected to: the client notices by its pings (stream.Open's), reconnects
// to another, and the server catches up once healed. Soak only: it builds
// nats-server and needs root.
func TestNetnsClusterPartition(t *testing.T) {
	if !streamtest.Soak() {
		t.Skip("soak only (REACTOR_SOAK=1): builds nats-server, needs root for network namespaces")
	}
	c := streamtest.NewNetnsCluster(t, 3)
	conn := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "P", Subjects: []string{"p.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	c.WaitStreamCurrent(30*time.Second, "P")
	victim := -1
	for i := range c.Size() {
		if c.ServerName(i) == conn.NC.ConnectedServerName() {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("client connected to %q, not a server of the cluster", conn.NC.ConnectedServerName())
	}
	c.Partition(victim)
	streamtest.Eventually(t, 60*time.Second, func() error {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := conn.JS.Publish(pctx, "p.x", []byte("x"))
		return err
	}, "a publish accepted by the two servers left")
	c.Heal(victim)
	c.WaitReady(60 * time.Second)
	c.WaitStreamCurrent(60*time.Second, "P")
}
