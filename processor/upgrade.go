package processor

import (
	"context"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// upgrade finds the work queue of the layout before one alert stream (see
// stream.FreezeLegacy) and freezes it. A group that had a consumer on it
// starts on the alert stream right after the last alert the work queue
// received, while drainLegacy handles what is left in it; a group new to
// the upgraded stream starts with the next alert unless told otherwise. It
// returns nil when there is no such work queue, or nothing of it for the
// group.
func (p *Processor) upgrade(ctx context.Context) (*stream.Legacy, error) {
	l, err := stream.FreezeLegacy(ctx, p.js, p.cfg.Topology)
	if err != nil || l == nil {
		return nil, err
	}
	mine := slices.Contains(l.Groups, p.cfg.Group)
	switch {
	case mine:
		p.spec.Start = stream.Start{Policy: stream.StartSeq, Seq: l.LastSeq + 1, Why: "upgrade: after the old work queue " + l.Stream}
	case len(l.Groups) > 0 && p.spec.Start.Policy == stream.StartAuto:
		p.spec.Start = stream.Start{Policy: stream.StartNew, Why: "auto: the stream has groups"}
	}
	p.log.Info("old work queue found: draining it, then deleting it", "work_stream", l.Stream,
		"last_seq", l.LastSeq, "groups", l.Groups, "drained_here", mine)
	if !mine {
		return nil, nil
	}
	return l, nil
}

// drainLegacy hands what is left for the group in the old work queue l to
// the workers, until it is all settled or ctx is done, then deletes the
// group's consumer there (and the work queue with its last consumer).
func (p *Processor) drainLegacy(ctx context.Context, l *stream.Legacy, dispatch func(jetstream.Msg, *jetstream.MsgMetadata)) {
	if l == nil {
		return
	}
	cons, err := p.js.Consumer(ctx, l.Stream, p.cfg.Group)
	if err != nil {
		p.log.Warn("old work queue: cannot bind the group's consumer", "work_stream", l.Stream, "err", err)
		return
	}
	for ctx.Err() == nil {
		info, err := cons.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			break
		}
		batch, err := cons.Fetch(p.cfg.Prefetch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			p.log.Debug("old work queue: fetch", "work_stream", l.Stream, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for msg := range batch.Messages() {
			meta, _ := msg.Metadata()
			dispatch(msg, meta)
		}
	}
	if ctx.Err() != nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	deleted, left, err := stream.RetireLegacy(rctx, p.js, l, p.cfg.Group)
	switch {
	case err != nil:
		p.log.Warn("old work queue drained, but not cleaned up", "work_stream", l.Stream, "err", err)
	case deleted && left > 0:
		p.log.Warn("old work queue drained and deleted; it held alerts no group's filter matched (they are in the alert stream: replay them if needed)",
			"work_stream", l.Stream, "left", left)
	case deleted:
		p.log.Info("old work queue drained and deleted", "work_stream", l.Stream)
	default:
		p.log.Info("old work queue drained for this group; other groups still have alerts in it", "work_stream", l.Stream)
	}
}
