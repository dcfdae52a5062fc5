package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// logStreams logs, once at start, what the streams and the group's consumer
// hold: the first thing to read after a crash or a damaged store (the
// server's own warnings about what it repaired come just before it).
func (p *Processor) logStreams(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	t := p.cfg.Topology
	var historyCreated time.Time
	state := func(name string) (jetstream.StreamState, bool) {
		s, err := p.js.Stream(ctx, name)
		if err != nil {
			p.log.Debug("read stream state", "stream", name, "err", err)
			return jetstream.StreamState{}, false
		}
		if name == t.History {
			historyCreated = s.CachedInfo().Created
		}
		return s.CachedInfo().State, true
	}
	h, okH := state(t.History)
	w, okW := state(t.Work)
	d, okD := state(t.DLQ)
	if okH && okW && okD {
		p.log.Info("streams ready",
			"history", h.Msgs, "history_first_seq", h.FirstSeq, "history_last_seq", h.LastSeq,
			"work_backlog", w.Msgs, "work_first_seq", w.FirstSeq, "work_last_seq", w.LastSeq,
			"dead_letters", d.Msgs)
	}
	if okH && okW {
		p.checkSourcing(ctx, h, w, historyCreated)
	}
	c, err := p.js.Consumer(ctx, t.Work, p.cfg.Group)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		p.log.Warn("consumer not found: creating it; every alert in the work queue will be delivered (a new group, or the consumer's state was lost)",
			"work_backlog", w.Msgs)
	case err != nil:
		p.log.Debug("read consumer state", "err", err)
	default:
		info := c.CachedInfo()
		p.log.Info("consumer found", "pending", info.NumPending, "ack_pending", info.NumAckPending,
			"redelivered", info.NumRedelivered, "delivered_seq", info.Delivered.Stream, "ack_floor_seq", info.AckFloor.Stream)
	}
}

// checkSourcing says when Work has seen History sequences that History does
// not have: the store was restored from a copy taken while the server ran
// (Work copied after History). The server resumes sourcing after the last
// sequence Work has seen, so the next alerts stored in History under
// sequences it already passed never reach the work queue; only a replay
// runs them.
func (p *Processor) checkSourcing(ctx context.Context, h, w jetstream.StreamState, historyCreated time.Time) {
	if w.Msgs == 0 {
		// The server resumes from its own record of the source position,
		// which clients cannot read. Work stores every alert of History
		// under the next sequence, so its last sequence is the best guess
		// (unless History was recreated since: the server then starts
		// over).
		if w.LastSeq > h.LastSeq && historyCreated.Before(w.LastTime) {
			p.log.Warn(fmt.Sprintf("work queue's last sequence is ahead of the history's (store restored from a copy taken while running?): up to %d alerts stored next in the history, sequences %d to %d, may not reach the work queue; replay them once published",
				w.LastSeq-h.LastSeq, h.LastSeq+1, w.LastSeq),
				"history_last_seq", h.LastSeq, "work_last_seq", w.LastSeq)
		}
		return
	}
	s, err := p.js.Stream(ctx, p.cfg.Topology.Work)
	if err != nil {
		return
	}
	last, err := s.GetLastMsgForSubject(ctx, ">")
	if err != nil {
		p.log.Debug("read last work message", "err", err)
		return
	}
	// "<stream> <seq> <filter> <transform> <subject> <id>"
	f := strings.Fields(last.Header.Get("Nats-Stream-Source"))
	if len(f) < 2 || f[0] != p.cfg.Topology.History {
		return
	}
	seen, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || seen <= h.LastSeq {
		return
	}
	p.log.Error(fmt.Sprintf("work queue is ahead of the history (store restored from a copy taken while running?): the next %d alerts stored in the history, sequences %d to %d, will not reach the work queue; replay them once published",
		seen-h.LastSeq, h.LastSeq+1, seen),
		"history_last_seq", h.LastSeq, "work_sourced_seq", seen, "alerts_skipped", seen-h.LastSeq,
		"replay_from_seq", h.LastSeq+1, "replay_to_seq", seen)
}
