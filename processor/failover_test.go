package processor_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
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
// leader of the history stream, of the work stream or of the group's
// consumer (one round each) is killed and restarted on its store, several
// times. Every alert whose publish returned a PubAck must be handled, and
// the work queue must drain with nothing left pending.
//
// Two times are reported per kill: until the processor settles alerts again
// (the consumer's failover), and until an alert published after the kill is
// handled (end to end, which includes the work stream sourcing the history
// again: nats-server notices a dead source only by its health check, 10-20s
// after the history leader died).
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	for _, target := range []failoverTarget{killHistoryLeader, killWorkLeader, killConsumerLeader} {
		t.Run(string(target), func(t *testing.T) {
			t.Parallel()
			testFailover(t, target)
		})
	}
}

type failoverTarget string

const (
	killHistoryLeader  failoverTarget = "history_leader"
	killWorkLeader     failoverTarget = "work_leader"
	killConsumerLeader failoverTarget = "consumer_leader"
)

func testFailover(t *testing.T, target failoverTarget) {
	kills := streamtest.Scale(2, 10)
	minAlerts := streamtest.Scale(3000, 50_000)

	c := streamtest.NewCluster(t, 3)
	topo := stream.Topology{Replicas: 3}.WithDefaults()
	handled := newHandledLog()
	// newest is the highest alert index handled: alerts are numbered in
	// publish order, so it tells when an alert published after a kill got
	// through.
	var newest atomic.Int64
	newest.Store(-1)
	router := processor.NewRouter()
	router.On("alerts.>", func(ctx context.Context, m *processor.Message) error {
		var i int64
		if _, err := fmt.Sscanf(m.ID(), string(target)+"-%d", &i); err == nil {
			for old := newest.Load(); i > old && !newest.CompareAndSwap(old, i); old = newest.Load() {
			}
		}
		return handled.process(ctx, m)
	})
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

	var worst, worstE2E time.Duration
	for k := range kills {
		from := handled.acks.Load()
		streamtest.Eventually(t, 60*time.Second, func() bool { return handled.acks.Load() >= from+200 }, "processing stalled before kill %d", k+1)

		victim, what := failoverVictim(t, c, topo, group, target)
		at := handled.acks.Load()
		next := published.Load() // the first alert published after the kill
		killed := time.Now()
		c.Kill(victim)
		var took, e2e time.Duration
		streamtest.Eventually(t, 90*time.Second, func() bool {
			if took == 0 && handled.acks.Load() >= at+resumed {
				took = time.Since(killed)
			}
			if e2e == 0 && newest.Load() >= next {
				e2e = time.Since(killed)
			}
			return took > 0 && e2e > 0
		}, "processing did not resume after kill %d (%s %s)", k+1, what, c.ServerName(victim))
		worst, worstE2E = max(worst, took), max(worstE2E, e2e)
		// "Within seconds": generous for a loaded CI machine, short of the
		// 10-20s nats-server alone takes to notice a dead source.
		if e2e > 15*time.Second {
			t.Errorf("kill %d: alerts published after the kill waited %s to be handled", k+1, e2e.Round(time.Millisecond))
		}
		t.Logf("kill %d: %s (%s) down, processing resumed in %s, end to end in %s",
			k+1, c.ServerName(victim), what, took.Round(time.Millisecond), e2e.Round(time.Millisecond))

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
	t.Logf("%s: alerts published %d, acked %d, publish failed %d, handled %d, lost %d, duplicates %d, kills survived %d, worst failover %s, worst end to end %s",
		target, published.Load(), len(ids), failed, handled.unique(), len(lost), handled.duplicates(), kills,
		worst.Round(time.Millisecond), worstE2E.Round(time.Millisecond))
}

// failoverVictim picks the server to kill. For the consumer round it moves
// the consumer's leadership off the stream leaders first, if it can, so that
// the kill tests the consumer's failover alone.
func failoverVictim(t *testing.T, c *streamtest.Cluster, topo stream.Topology, group string, target failoverTarget) (int, string) {
	t.Helper()
	histLeader := c.WaitLeader(30*time.Second, topo.History)
	workLeader := c.WaitLeader(30*time.Second, topo.Work)
	consLeader := func() int {
		l := -1
		streamtest.Eventually(t, 30*time.Second, func() bool { l = c.ConsumerLeader(topo.Work, group); return l >= 0 },
			"consumer %s has no leader", group)
		return l
	}
	// also names the other leaderships the victim holds.
	also := func(victim int) string {
		var roles []string
		if victim == histLeader && target != killHistoryLeader {
			roles = append(roles, topo.History)
		}
		if victim == workLeader && target != killWorkLeader {
			roles = append(roles, topo.Work)
		}
		if victim == consLeader() && target != killConsumerLeader {
			roles = append(roles, "consumer "+group)
		}
		if len(roles) == 0 {
			return ""
		}
		return ", also leader of " + strings.Join(roles, " and ")
	}
	switch target {
	case killHistoryLeader:
		return histLeader, "leader of " + topo.History + also(histLeader)
	case killWorkLeader:
		return workLeader, "leader of " + topo.Work + also(workLeader)
	}
	for range 5 {
		cl := consLeader()
		if cl != workLeader && cl != histLeader {
			return cl, "leader of consumer " + group + also(cl)
		}
		if srv := c.Server(cl); srv != nil {
			_ = srv.NATS().JetStreamStepdownConsumer(streamtest.Account, topo.Work, group)
		}
		streamtest.Eventually(t, 30*time.Second, func() bool {
			l := c.ConsumerLeader(topo.Work, group)
			return l >= 0 && l != cl
		}, "consumer %s leader did not step down", group)
		histLeader = c.WaitLeader(30*time.Second, topo.History)
		workLeader = c.WaitLeader(30*time.Second, topo.Work)
	}
	cl := consLeader()
	return cl, "leader of consumer " + group + also(cl)
}
