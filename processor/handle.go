package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// delivery is one message in the hands of a worker, with the Message its
// handler sees (one allocation for both). Exactly one party settles it
// (acks, naks or terminates): the worker, or a shutdown that ran out of
// patience.
type delivery struct {
	msg     jetstream.Msg
	settled atomic.Bool
	m       Message
}

// settle claims the right to acknowledge d; it reports false if someone
// already did.
func (d *delivery) settle() bool { return d.settled.CompareAndSwap(false, true) }

// handle runs the handler on it and settles it, in the worker that owns s.
func (p *Processor) handle(ctx context.Context, s *slot, it pulled) {
	msg, meta := it.msg, it.meta
	if p.stopping.Load() {
		_ = msg.Nak() // not started: let another worker or the next run have it now
		return
	}
	if meta == nil {
		// Not a JetStream delivery: nothing to ack, nothing to retry.
		_, err := msg.Metadata()
		p.log.Error("message without JetStream metadata", "subject", msg.Subject(), "err", err)
		return
	}
	d := &delivery{msg: msg, m: Message{
		subject:   p.alertSubject(msg.Subject()),
		data:      msg.Data(),
		header:    msg.Headers(),
		stream:    meta.Stream,
		sequence:  meta.Sequence.Stream,
		delivered: int(meta.NumDelivered),
		timestamp: meta.Timestamp,
	}}
	m := &d.m
	if m.delivered > 1 && !p.discountDeferrals(ctx, msg, m) {
		return // nak'ed
	}
	s.set(d, it.mark)
	p.running.Add(1)
	h, entry := p.route(m)
	ctx, span := p.startSpan(ctx, m)
	start := time.Now()
	var herr error
	if m.delivered > p.cfg.MaxDeliver {
		// Past the limit: earlier deliveries failed and could not be
		// dead-lettered, or crashed the process, or outlived the ack wait.
		// Running the handler again could crash again; dead-letter it.
		herr = fmt.Errorf("%w: delivered %d times, past max deliver %d, without being settled (the handler may crash the process or outlive the ack wait; last error seen: %s)",
			ErrMaxDeliveries, m.delivered, p.cfg.MaxDeliver, p.attempts.lastError(m.sequence))
	} else {
		herr = call(ctx, h, m)
	}
	elapsed := time.Since(start)
	s.clear()
	p.running.Add(-1)
	if !d.settle() {
		endSpan(span, OutcomeRetry, herr)
		return // a shutdown nak'ed it already
	}
	endSpan(span, p.settle(ctx, s, d, m, entry, herr, start, elapsed), herr)
}

// alertSubject is the subject the handlers see: an alert redriven for the
// group comes back on the group's redrive subject, and is handled under its
// original one.
func (p *Processor) alertSubject(subject string) string {
	if rest, ok := strings.CutPrefix(subject, p.redrive); ok {
		return rest
	}
	return subject
}

// call runs h, turning a panic into a *PanicError.
func call(ctx context.Context, h Handler, m *Message) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return h.Process(ctx, m)
}

// settle applies the outcome of herr to the message, and logs it once.
func (p *Processor) settle(ctx context.Context, s *slot, d *delivery, m *Message, entry string, herr error, start time.Time, elapsed time.Duration) Outcome {
	dec := classify(herr, m.delivered, p.cfg.MaxDeliver, p.backoff, randJitter())
	if herr != nil && context.Cause(ctx) == ErrShutdown && dec.Outcome == OutcomeRetry {
		dec.Delay = 0 // cancelled by shutdown, not failed: redeliver at once
	}
	var err error
	switch dec.Outcome {
	case OutcomeAck, OutcomeDrop:
		err = p.ack(s, d.msg)
	case OutcomeRetry:
		err = d.msg.NakWithDelay(dec.Delay)
	case OutcomeDefer:
		err = p.deferDelivery(ctx, d.msg, m, dec.Delay)
	case OutcomeDeadLetter:
		fallback := start
		if m.delivered > 1 {
			fallback = m.timestamp
		}
		first := p.attempts.firstAttempt(m.sequence, fallback)
		if err = p.deadLetter(ctx, d.msg, m, herr, dec.Reason, entry, first, start); err != nil {
			// The DLQ refused it: leave the alert unsettled. The
			// server's MaxDeliver is unlimited, so it comes back.
			dec = Decision{Outcome: OutcomeRetry, Delay: p.backoff.delay(m.delivered, randJitter())}
			if nakErr := d.msg.NakWithDelay(dec.Delay); nakErr != nil {
				err = errors.Join(err, nakErr)
			}
		}
	}
	if dec.Outcome == OutcomeRetry {
		p.attempts.record(m.sequence, start, herr)
	} else if m.delivered > 1 {
		p.attempts.forget(m.sequence)
	}
	p.logOutcome(m, entry, dec, herr, err, elapsed)
	if p.cfg.OnOutcome != nil {
		p.cfg.OnOutcome(Result{Message: m, Entry: entry, Outcome: dec.Outcome, Delay: dec.Delay, Err: herr, SettleErr: err, Duration: elapsed})
	}
	return dec.Outcome
}

// deadLetter stores m in the DLQ stream with its reason (see
// stream.PublishDeadLetter), then terminates the original.
func (p *Processor) deadLetter(ctx context.Context, msg jetstream.Msg, m *Message, herr error, reason, entry string, first, last time.Time) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stream.RequestTimeoutDefault)
	defer cancel()
	err := stream.PublishDeadLetter(pctx, p.js, p.cfg.Topology, stream.DeadLetter{
		Subject:      m.subject,
		Data:         m.data,
		Header:       m.header,
		Reason:       reason,
		Error:        errorDetail(herr),
		Entry:        entry,
		Stream:       m.stream,
		Sequence:     m.sequence,
		Group:        p.cfg.Group,
		Deliveries:   m.delivered,
		FirstAttempt: first,
		LastAttempt:  last,
		Queued:       m.timestamp,
		MsgID:        m.ID(),
	})
	if err != nil {
		return err
	}
	if err := msg.TermWithReason(reason); err != nil {
		// Stored in the DLQ but still unsettled: it will be delivered again
		// and dead-lettered again under the same id, which the DLQ
		// deduplicates.
		p.log.Warn("dead letter stored, terminate failed", "subject", m.subject, "seq", m.sequence, "err", err)
	}
	return nil
}

// ack acknowledges msg; with DoubleAck it waits for the server to confirm,
// through the worker's confirmer.
func (p *Processor) ack(s *slot, msg jetstream.Msg) error {
	if s.confirm != nil {
		return s.confirm.ack(msg.Reply())
	}
	return msg.Ack()
}

func (p *Processor) logOutcome(m *Message, entry string, dec Decision, herr, ackErr error, elapsed time.Duration) {
	level := slog.LevelDebug
	switch {
	case ackErr != nil || dec.Outcome == OutcomeDeadLetter:
		level = slog.LevelError
	case dec.Outcome == OutcomeRetry:
		level = slog.LevelWarn
	}
	ctx := context.Background()
	if !p.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("outcome", dec.Outcome.String()),
		slog.String("subject", m.subject),
		slog.Uint64("seq", m.sequence),
		slog.Int("delivered", m.delivered),
		slog.String("entry", entry),
		slog.Duration("duration", elapsed),
	}
	if dec.Outcome == OutcomeRetry {
		attrs = append(attrs, slog.Duration("retry_in", dec.Delay))
	}
	if herr != nil {
		attrs = append(attrs, slog.String("err", herr.Error()))
		if a, ok := stackAttr(herr); ok {
			attrs = append(attrs, a)
		}
	}
	if ackErr != nil {
		attrs = append(attrs, slog.String("settle_err", ackErr.Error()))
	}
	p.log.LogAttrs(ctx, level, "alert settled", attrs...)
}

// attemptLog remembers, for each message being retried, when this process
// first tried it and the last error, for the dead letter's headers. It is
// bounded: past maxAttempts entries new ones are not recorded. A dead letter
// whose first attempt is unknown (made by another process, or not recorded)
// falls back to the time the message was queued.
type attemptLog struct {
	mu    sync.Mutex
	first map[uint64]attempt
}

type attempt struct {
	first   time.Time
	lastErr string
}

const maxAttempts = 100_000

func (a *attemptLog) record(seq uint64, at time.Time, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.first[seq]
	if !ok {
		if len(a.first) >= maxAttempts {
			return
		}
		e.first = at
	}
	if err != nil && !errors.Is(err, ErrMaxDeliveries) {
		e.lastErr = err.Error()
	}
	a.first[seq] = e
}

// firstAttempt returns the recorded first attempt of seq, or fallback.
func (a *attemptLog) firstAttempt(seq uint64, fallback time.Time) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.first[seq]; ok {
		return e.first
	}
	return fallback
}

// lastError returns the last error recorded for seq, or "unknown".
func (a *attemptLog) lastError(seq uint64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.first[seq]; ok && e.lastErr != "" {
		return e.lastErr
	}
	return "unknown (not seen by this process)"
}

func (a *attemptLog) forget(seq uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.first, seq)
}
