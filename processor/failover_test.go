package processor_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestClusterFailover runs a processor against a three-server cluster,
// connected by URL to all three as against an external cluster, with every
// stream replicated three times. Alerts are published continuously while the
// leader of the work stream (one round) or of the group's consumer (the
// other) is killed and restarted on its store, several times. Every alert
// whose publish returned a PubAck must be handled, and the work queue must
// drain with nothing left pending.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	for _, target := range []failoverTarget{streamLeader, consumerLeader} {
		t.Run(string(target), func(t *testing.T) {
			t.Parallel()
			testFailover(t, target)
		})
	}
}

type failoverTarget string

const (
	streamLeader   failoverTarget = "stream_leader"
	consumerLeader failoverTarget = "consumer_leader"
)

func testFailover(t *testing.T, target failoverTarget) {
	kills := streamtest.Scale(2, 10)
	minAlerts := streamtest.Scale(3000, 50_000)

	c := streamtest.NewCluster(t, 3)
	topo := stream.Topology{Replicas: 3}.WithDefaults()
	handled := newHandledLog()
	router := processor.NewRouter()
	router.On("alerts.>", handled.process)
	logs := &logBuffer{}
	cfg := reliabilityConfig(topo, handled, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	defer func() {
		if t.Failed() {
			t.Logf("processor log:\n%s", logs)
		}
	}()
	p, stop := runProcessor(t, c.Connect(t).JS, router, cfg)
	group := p.Config().Group
	resumed := int64(cfg.Workers + p.Config().Prefetch + 1) // more than was buffered at the kill

	// The publisher: continuously, paced, until the kills are done and at
	// least minAlerts were published.
	pub := stream.NewPublisher(c.Connect(t).JS, stream.PublisherConfig{Attempts: 30, AttemptTimeout: 2 * time.Second})
	acked := &ackedLog{}
	var published atomic.Int64
	killsDone := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if i >= minAlerts {
				select {
				case <-killsDone:
					return
				default:
				}
			}
			<-tick.C
			msg := alertMsg(string(target), i)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			_, err := pub.Publish(ctx, msg)
			cancel()
			acked.add(msg.Header.Get("Nats-Msg-Id"), err)
			published.Add(1)
		}
	}()

	var worst time.Duration
	for k := range kills {
		from := handled.acks.Load()
		streamtest.Eventually(t, 60*time.Second, func() bool { return handled.acks.Load() >= from+200 }, "processing stalled before kill %d", k+1)

		victim, what := failoverVictim(t, c, topo, group, target)
		at := handled.acks.Load()
		killed := time.Now()
		c.Kill(victim)
		streamtest.Eventually(t, 60*time.Second, func() bool { return handled.acks.Load() >= at+resumed },
			"processing did not resume after kill %d (%s %s)", k+1, what, c.ServerName(victim))
		took := time.Since(killed)
		worst = max(worst, took)
		t.Logf("kill %d: %s (%s) down, processing resumed in %s", k+1, c.ServerName(victim), what, took.Round(time.Millisecond))

		c.Restart(victim)
		c.WaitReady(60 * time.Second)
		c.WaitStreamCurrent(60*time.Second, topo.History, topo.Work)
	}
	close(killsDone)
	<-pubDone

	ids, failed := acked.snapshot()
	streamtest.Eventually(t, 60*time.Second, func() bool { return len(handled.missing(ids)) == 0 },
		"acknowledged alerts never handled")
	waitDrained(t, c.Connect(t).JS, topo, group, 60*time.Second)
	stop()
	lost := handled.missing(ids)
	if len(lost) > 0 {
		t.Errorf("%d acknowledged alerts lost, first %v", len(lost), lost[:min(10, len(lost))])
	}
	t.Logf("%s: alerts published %d, acked %d, publish failed %d, handled %d, lost %d, duplicates %d, kills survived %d, worst failover %s",
		target, published.Load(), len(ids), failed, handled.unique(), len(lost), handled.duplicates(), kills, worst.Round(time.Millisecond))
}

// failoverVictim picks the server to kill. For the consumer round it moves
// the consumer's leadership off the stream leader first, if it can, so that
// the kill tests the consumer's failover alone.
func failoverVictim(t *testing.T, c *streamtest.Cluster, topo stream.Topology, group string, target failoverTarget) (int, string) {
	t.Helper()
	workLeader := c.WaitLeader(30*time.Second, topo.Work)
	consLeader := func() int {
		l := -1
		streamtest.Eventually(t, 30*time.Second, func() bool { l = c.ConsumerLeader(topo.Work, group); return l >= 0 },
			"consumer %s has no leader", group)
		return l
	}
	if target == streamLeader {
		what := "leader of " + topo.Work
		if consLeader() == workLeader {
			what += " and of consumer " + group
		}
		return workLeader, what
	}
	for range 5 {
		cl := consLeader()
		if cl != workLeader {
			return cl, fmt.Sprintf("leader of consumer %s only", group)
		}
		if srv := c.Server(cl); srv != nil {
			_ = srv.NATS().JetStreamStepdownConsumer(streamtest.Account, topo.Work, group)
		}
		streamtest.Eventually(t, 30*time.Second, func() bool {
			l := c.ConsumerLeader(topo.Work, group)
			return l >= 0 && l != cl
		}, "consumer %s leader did not step down", group)
		workLeader = c.WaitLeader(30*time.Second, topo.Work)
	}
	return consLeader(), fmt.Sprintf("leader of consumer %s (and of %s)", group, topo.Work)
}
