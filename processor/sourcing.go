package processor

import (
	"context"
	"time"

	"github.com/reactor-alerts/reactor/stream"
)

const (
	// sourcingCheck is how often the work stream's sourcing is checked.
	sourcingCheck = 2 * time.Second
	// sourcingStall is the silence after which the source is taken for
	// dead: it heartbeats every second.
	sourcingStall = 5 * time.Second
	// sourcingRetry is the least time between two restarts, so that a new
	// leader has time to set the source up (its silence is counted from
	// then). Short enough for a second failover soon after the first.
	sourcingRetry = sourcingStall
)

// watchSourcing restarts the work stream's sourcing of the history stream
// when it stalls, until ctx is done. On a cluster, the death of the history
// stream's leader stops the sourcing, and nats-server notices only 10-20s
// later: new alerts would wait that long before any worker sees them. See
// stream.RestartSourcing. A single server (Replicas 1) has no such failover,
// and nothing is watched.
func (p *Processor) watchSourcing(ctx context.Context) {
	if p.cfg.Topology.Replicas < 2 {
		return
	}
	tick := time.NewTicker(sourcingCheck)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if time.Since(last) < sourcingRetry {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, sourcingCheck)
		inactive, err := stream.SourceInactive(cctx, p.js, p.cfg.Topology)
		if err == nil && inactive > sourcingStall {
			if err = stream.RestartSourcing(cctx, p.js, p.cfg.Topology); err == nil {
				last = time.Now()
				p.log.Warn("work stream stopped sourcing alerts: moved its leadership to restart sourcing",
					"source", p.cfg.Topology.History, "inactive", inactive.Round(time.Millisecond))
			}
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			p.log.Debug("check sourcing", "err", err)
		}
	}
}
