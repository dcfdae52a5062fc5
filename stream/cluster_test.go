package stream_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestClusterReplicatedTopology: the topology with three replicas on a
// three-server cluster reached by URL, as `--url a,b,c --replicas 3` does.
func TestClusterReplicatedTopology(t *testing.T) {
	t.Parallel()
	c := streamtest.NewCluster(t, 3)
	conn := c.Connect(t)
	topo := stream.Topology{Replicas: 3}.WithDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stream.EnsureStreams(ctx, conn.JS, topo); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}
	for _, name := range []string{topo.Alerts, topo.DLQ} {
		s, err := conn.JS.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info := s.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			t.Errorf("stream %s: replicas %d, cluster %+v; want 3 replicas with a leader", name, info.Config.Replicas, info.Cluster)
		}
	}
	cons, err := stream.EnsureConsumer(ctx, conn.JS, topo, stream.ConsumerSpec{Name: "g", AckWait: time.Second, MaxDeliver: -1, MaxAckPending: 100})
	if err != nil {
		t.Fatalf("ensure consumer: %v", err)
	}
	if r := cons.CachedInfo().Config.Replicas; r != 0 && r != 3 {
		t.Errorf("consumer replicas %d, want the stream's 3", r)
	}
	if leader := c.ConsumerLeader(topo.Alerts, "g"); leader < 0 {
		t.Errorf("consumer g has no leader")
	}
	streamtest.Publish(t, conn, "alerts.cpu", "one", []byte(`{}`))
	streamtest.Eventually(t, 10*time.Second, func() bool {
		pending, _, ok := streamtest.ConsumerPending(conn.JS, topo.Alerts, "g")
		return ok && pending == 1
	}, "the group's consumer never saw the alert")
}

// TestClusterPublishAcrossLeaderFailover publishes continuously while the
// alert stream's leader is killed and restarted: every publish reported
// successful is stored exactly once, whichever server ends up leading.
func TestClusterPublishAcrossLeaderFailover(t *testing.T) {
	t.Parallel()
	kills := streamtest.Scale(2, 10)
	c := streamtest.NewCluster(t, 3)
	conn := c.Connect(t)
	topo := stream.Topology{Replicas: 3}.WithDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stream.EnsureStreams(ctx, conn.JS, topo); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}

	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{Attempts: 20, AttemptTimeout: 2 * time.Second})
	var (
		mu     sync.Mutex
		acked  = map[string]bool{}
		failed int
		sent   atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("p%d-%d", w, i)
				msg := nats.NewMsg("alerts.cpu")
				msg.Data = []byte(`{}`)
				msg.Header.Set(nats.MsgIdHdr, id)
				pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := pub.Publish(pctx, msg)
				pcancel()
				mu.Lock()
				if err == nil {
					acked[id] = true
				} else {
					failed++
				}
				mu.Unlock()
				sent.Add(1)
			}
		}()
	}
	progress := func(n int64) {
		t.Helper()
		from := sent.Load()
		streamtest.Eventually(t, 30*time.Second, func() bool { return sent.Load() >= from+n }, "publishing stalled at %d", from)
	}
	for k := range kills {
		progress(200)
		leader := c.WaitLeader(10*time.Second, topo.Alerts)
		killed := time.Now()
		c.Kill(leader)
		progress(50)
		t.Logf("kill %d: alert stream leader %s down, publishing resumed in %s", k+1, c.ServerName(leader), time.Since(killed).Round(time.Millisecond))
		c.Restart(leader)
		c.WaitReady(30 * time.Second)
		c.WaitStreamCurrent(30*time.Second, topo.Alerts)
	}
	progress(200)
	close(stop)
	wg.Wait()

	stored := streamtest.MsgIDs(t, conn.JS, topo.Alerts)
	lost, dups := 0, 0
	for id := range acked {
		if stored[id] == 0 {
			lost++
		}
	}
	for id, n := range stored {
		if n > 1 {
			dups += n - 1
			t.Errorf("id %s stored %d times", id, n)
		}
	}
	t.Logf("published %d, acked %d, failed %d, stored %d, lost %d, duplicates %d, kills survived %d",
		sent.Load(), len(acked), failed, len(stored), lost, dups, kills)
	if lost > 0 {
		t.Errorf("%d acknowledged alerts missing from %s", lost, topo.Alerts)
	}
}
