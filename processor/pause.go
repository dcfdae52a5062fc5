package processor

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactor-alerts/reactor/stream"
)

// pauseAdvisory is the part of nats-server's consumer pause advisory
// (io.nats.jetstream.advisory.v1.consumer_pause) the processor reads.
type pauseAdvisory struct {
	Paused     bool      `json:"paused"`
	PauseUntil time.Time `json:"pause_until"`
}

// watchPause logs when the group is paused or resumed (stream.PauseGroup,
// `reactor group pause`): a paused group receives nothing, and its processes
// must say why they are idle. It logs the pause found at start, then follows
// the server's pause advisories until the returned stop is called.
func (p *Processor) watchPause(ctx context.Context) (stop func()) {
	t := p.cfg.Topology
	subject := "$JS.EVENT.ADVISORY.CONSUMER.PAUSE." + t.WithDefaults().Alerts + "." + p.cfg.Group
	sub, err := p.js.Conn().Subscribe(subject, func(m *nats.Msg) {
		var a pauseAdvisory
		if err := json.Unmarshal(m.Data, &a); err != nil {
			p.log.Debug("unreadable pause advisory", "err", err)
			return
		}
		p.logPause(a.Paused, a.PauseUntil)
	})
	if err != nil {
		p.log.Debug("cannot follow pause advisories", "subject", subject, "err", err)
		sub = nil
	}
	cctx, cancel := context.WithTimeout(ctx, stream.RequestTimeoutDefault)
	defer cancel()
	if c, err := p.js.Consumer(cctx, t.WithDefaults().Alerts, p.cfg.Group); err == nil && c.CachedInfo().Paused {
		if until := c.CachedInfo().Config.PauseUntil; until != nil {
			p.logPause(true, *until)
		}
	}
	return func() {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
	}
}

func (p *Processor) logPause(paused bool, until time.Time) {
	switch {
	case !paused:
		p.log.Info("group resumed: receiving alerts again")
	case time.Until(until) > stream.PauseIndefinitely/2:
		p.log.Warn("group paused: no alerts are delivered until it is resumed (reactor group resume)", "group", p.cfg.Group)
	default:
		p.log.Warn("group paused: no alerts are delivered until it is resumed or the pause ends", "group", p.cfg.Group, "until", until.UTC())
	}
}
