package processor

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// logStreams logs, once at start, what the streams and the group's consumer
// hold: the first thing to read after a crash or a damaged store (the
// server's own warnings about what it repaired come just before it).
func (p *Processor) logStreams(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, stream.RequestTimeoutDefault)
	defer cancel()
	t := p.cfg.Topology
	state := func(name string) (jetstream.StreamState, bool) {
		s, err := p.js.Stream(ctx, name)
		if err != nil {
			p.log.Debug("read stream state", "stream", name, "err", err)
			return jetstream.StreamState{}, false
		}
		return s.CachedInfo().State, true
	}
	a, okA := state(t.Alerts)
	d, okD := state(t.DLQ)
	if okA && okD {
		p.log.Info("streams ready",
			"alerts", a.Msgs, "alerts_first_seq", a.FirstSeq, "alerts_last_seq", a.LastSeq,
			"dead_letters", d.Msgs)
	}
	c, err := p.js.Consumer(ctx, t.Alerts, p.cfg.Group)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		p.log.Info("consumer not found: creating it", "start", p.spec.Start.String())
	case err != nil:
		p.log.Debug("read consumer state", "err", err)
	default:
		info := c.CachedInfo()
		p.log.Info("consumer found", "pending", info.NumPending, "ack_pending", info.NumAckPending,
			"redelivered", info.NumRedelivered, "delivered_seq", info.Delivered.Stream, "ack_floor_seq", info.AckFloor.Stream)
		if okA && info.Delivered.Stream > a.LastSeq {
			p.rewindConsumer(ctx, info, a.LastSeq)
		}
	}
}

// rewindConsumer recreates a consumer that is ahead of its stream: it has
// been delivered sequences the stream does not have (a store restored from
// a copy taken while the server ran, its consumer state copied after its
// messages; or a damaged block cut off the stream's tail). The stream stores
// the next alerts under those sequences, and the consumer would skip them.
// nats-server (v2.15) reconciles a single-replica consumer itself when it
// recovers the store (consumer.go, "delivered sequence ... past last stream
// sequence"), not a replicated one. The new consumer starts after what the
// old one had settled that the stream still has; in-flight alerts come
// back.
func (p *Processor) rewindConsumer(ctx context.Context, info *jetstream.ConsumerInfo, lastSeq uint64) {
	from := min(info.AckFloor.Stream, lastSeq) + 1
	if err := p.js.DeleteConsumer(ctx, p.cfg.Topology.Alerts, p.cfg.Group); err != nil {
		p.log.Error("consumer is ahead of the stream and could not be recreated: new alerts up to delivered_seq will not reach the group; replay them",
			"delivered_seq", info.Delivered.Stream, "stream_last_seq", lastSeq, "err", err)
		return
	}
	p.spec.Start = stream.Start{Policy: stream.StartSeq, Seq: from, Why: "rewound: the consumer was ahead of the stream"}
	p.log.Warn("consumer was ahead of the stream (store restored from a live copy, or damaged): recreating it after the last alert it settled",
		"delivered_seq", info.Delivered.Stream, "ack_floor_seq", info.AckFloor.Stream, "stream_last_seq", lastSeq, "start_seq", from)
}

// watchBacklog warns, until ctx is done, while the group's oldest unsettled
// alert is older than half the alert stream's MaxAge: at MaxAge it leaves the
// stream, settled or not.
func (p *Processor) watchBacklog(ctx context.Context) {
	maxAge := p.cfg.Topology.MaxAge
	tick := time.NewTicker(min(time.Minute, max(maxAge/20, 100*time.Millisecond)))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, stream.RequestTimeoutDefault)
		seq, at, err := p.oldestUnsettled(cctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				p.log.Debug("read oldest unsettled alert", "err", err)
			}
			continue
		}
		if age := time.Since(at); seq > 0 && age > maxAge/2 {
			p.log.Warn("oldest unsettled alert is past half the retention: alerts older than max_age leave the stream unhandled; add workers or fix what fails",
				"seq", seq, "age", age.Round(time.Second), "max_age", maxAge)
		}
	}
}

// oldestUnsettled returns the group's oldest unsettled alert's sequence and
// storage time (see stream.GroupStatus); seq is 0 when there is none.
func (p *Processor) oldestUnsettled(ctx context.Context) (uint64, time.Time, error) {
	g, err := stream.ReadGroup(ctx, p.js, p.cfg.Topology, p.cfg.Group)
	if err != nil {
		return 0, time.Time{}, err
	}
	return g.OldestUnsettledSeq, g.OldestUnsettled, nil
}
