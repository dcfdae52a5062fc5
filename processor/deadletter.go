package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// deadLetter stores m in the DLQ stream with the reason in its headers, waits
// for the PubAck, then terminates the original. The DLQ message id is
// <stream>-<seq>, so a dead letter stored twice (a crash between the publish
// and the termination) is kept once.
func (p *Processor) deadLetter(ctx context.Context, msg jetstream.Msg, m *Message, herr error, pattern string, first, last time.Time) error {
	dl := stream.DeadLetter{
		Subject:      m.subject,
		Data:         m.data,
		Header:       m.header,
		Reason:       deadLetterReason(herr, m.delivered, p.cfg.MaxDeliver),
		Error:        herr.Error(),
		Pattern:      pattern,
		Stream:       m.stream,
		Sequence:     m.sequence,
		Origin:       stream.OriginOf(m.header),
		Group:        p.cfg.Group,
		Deliveries:   m.delivered,
		FirstAttempt: first,
		LastAttempt:  last,
		Queued:       m.timestamp,
		MsgID:        m.ID(),
	}
	out := dl.Msg(p.cfg.Topology.DLQSubject(m.subject))
	stream.FitPayload(out, p.js.Conn().MaxPayload())
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	id := fmt.Sprintf("%s-%d", m.stream, m.sequence)
	if _, err := p.js.PublishMsg(pctx, out, jetstream.WithMsgID(id), jetstream.WithExpectStream(p.cfg.Topology.DLQ)); err != nil {
		return fmt.Errorf("publish dead letter %s: %w", id, err)
	}
	if err := msg.TermWithReason(dl.Reason); err != nil {
		// Stored in the DLQ but still queued: it will be delivered again and
		// dead-lettered again under the same id, which the DLQ deduplicates.
		p.log.Warn("dead letter stored, terminate failed", "subject", m.subject, "seq", m.sequence, "err", err)
	}
	return nil
}

func deadLetterReason(err error, delivered, maxDeliver int) string {
	var perm *PermanentError
	switch {
	case errors.Is(err, ErrNoHandler):
		return stream.ReasonNoHandler
	case errors.As(err, &perm):
		return stream.ReasonPermanent
	case delivered >= maxDeliver:
		return stream.ReasonMaxDeliveries
	}
	return stream.ReasonPermanent
}
