package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HeaderRedrivenFrom marks an alert put back into processing from the DLQ:
// its value is the dead letter's sequence in the DLQ stream.
const HeaderRedrivenFrom = "Reactor-Redriven-From"

// ErrDeadLetterNotFound means the DLQ stream has no message at a sequence.
var ErrDeadLetterNotFound = errors.New("stream: no dead letter with that sequence")

// DLQEntry is a dead letter as the DLQ stream holds it.
type DLQEntry struct {
	DeadLetter
	// DLQSubject is the subject it is stored on, e.g. "dlq.alerts.cpu".
	DLQSubject string
	// Stored is when the DLQ stream stored it.
	Stored time.Time
	// RawHeader holds every header as stored, Reactor-* and Nats-* included.
	RawHeader nats.Header
}

// Redriven is a dead letter published again to its original subject.
type Redriven struct {
	// DLQSequence is the dead letter's sequence in the DLQ stream.
	DLQSequence uint64
	// Subject is the original subject it was published to again.
	Subject string
	// Stream and Sequence say where the history stream stored it.
	Stream   string
	Sequence uint64
	// MsgID is the new Nats-Msg-Id.
	MsgID string
	// Duplicate reports that the history stream already had this redrive
	// (a redrive retried within the duplicate window): it was not stored
	// twice.
	Duplicate bool
}

// DLQ lists, shows, redrives and purges the dead letters of a topology.
type DLQ struct {
	js   jetstream.JetStream
	topo Topology
	pub  *Publisher
}

// NewDLQ returns a DLQ for t's dead-letter stream on js.
func NewDLQ(js jetstream.JetStream, t Topology) *DLQ {
	return &DLQ{js: js, topo: t.WithDefaults(), pub: NewPublisher(js, PublisherConfig{})}
}

// filter is the DLQ subject filter for an alert subject pattern; "" is all.
func (q *DLQ) filter(subject string) []string {
	if subject == "" {
		return nil
	}
	return []string{q.topo.DLQSubject(subject)}
}

// List returns up to limit dead letters (0 means all), oldest first, whose
// original subject matches the subject pattern ("" matches all), and how many
// matched in total.
func (q *DLQ) List(ctx context.Context, subject string, limit int) ([]DLQEntry, uint64, error) {
	r, err := NewReader(ctx, q.js, q.topo.DLQ, ReadOptions{FilterSubjects: q.filter(subject)})
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	var out []DLQEntry
	for limit <= 0 || len(out) < limit {
		m, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, r.Pending(), err
		}
		out = append(out, q.entry(m))
	}
	return out, max(r.Pending(), uint64(len(out))), nil
}

// Get returns the dead letter at seq in the DLQ stream.
func (q *DLQ) Get(ctx context.Context, seq uint64) (DLQEntry, error) {
	s, err := q.js.Stream(ctx, q.topo.DLQ)
	if err != nil {
		return DLQEntry{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DLQEntry{}, fmt.Errorf("%w: %d in %s", ErrDeadLetterNotFound, seq, q.topo.DLQ)
	}
	if err != nil {
		return DLQEntry{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	return q.entry(storedFromRaw(q.topo.DLQ, raw)), nil
}

func (q *DLQ) entry(m StoredMsg) DLQEntry {
	d := ParseDeadLetter(m.Subject, m.Data, m.Header)
	d.DLQSequence = m.Sequence
	return DLQEntry{DeadLetter: d, DLQSubject: m.Subject, Stored: m.Time, RawHeader: m.Header}
}

// Redrive publishes the dead letter at seq again to its original subject,
// with its original headers, a new Nats-Msg-Id and HeaderRedrivenFrom, waits
// for the history stream's PubAck, and only then deletes it from the DLQ.
//
// The new id is derived from the dead letter (the DLQ stream and sequence,
// and the work stream and sequence it failed at), so a redrive that is
// retried after a failure to delete is stored once within the duplicate
// window.
func (q *DLQ) Redrive(ctx context.Context, seq uint64) (Redriven, error) {
	e, err := q.Get(ctx, seq)
	if err != nil {
		return Redriven{}, err
	}
	return q.redrive(ctx, e)
}

func (q *DLQ) redrive(ctx context.Context, e DLQEntry) (Redriven, error) {
	seq := e.DLQSequence
	if e.Subject == "" {
		return Redriven{}, fmt.Errorf("redrive dead letter %d: no original subject in its headers", seq)
	}
	msg := nats.NewMsg(e.Subject)
	msg.Data = e.Data
	for k, vs := range e.Header { // the original headers, without Nats-* and Reactor-*
		msg.Header[k] = vs
	}
	id := fmt.Sprintf("redrive-%s-%d-%s-%d", q.topo.DLQ, seq, e.Stream, e.Sequence)
	msg.Header.Set(nats.MsgIdHdr, id)
	msg.Header.Set(HeaderRedrivenFrom, strconv.FormatUint(seq, 10))
	ack, err := q.pub.Publish(ctx, msg)
	if err != nil {
		return Redriven{}, fmt.Errorf("redrive dead letter %d: %w (it stays in %s)", seq, err, q.topo.DLQ)
	}
	out := Redriven{DLQSequence: seq, Subject: e.Subject, Stream: ack.Stream, Sequence: ack.Sequence, MsgID: id, Duplicate: ack.Duplicate}
	if err := q.delete(ctx, seq); err != nil {
		return out, fmt.Errorf("dead letter %d redriven to %s seq %d, but not removed from %s (redriving it again within %s stores it once): %w",
			seq, ack.Stream, ack.Sequence, q.topo.DLQ, q.topo.DuplicateWindow, err)
	}
	return out, nil
}

// RedriveAll redrives every dead letter whose original subject matches the
// subject pattern ("" matches all), up to the DLQ's last message when it
// began, calling done for each. A failed redrive leaves its dead letter in
// place and the others go on. It returns the number redriven and failed.
func (q *DLQ) RedriveAll(ctx context.Context, subject string, done func(Redriven, error)) (ok, failed int, err error) {
	r, err := NewReader(ctx, q.js, q.topo.DLQ, ReadOptions{FilterSubjects: q.filter(subject)})
	if err != nil {
		return 0, 0, err
	}
	defer r.Close()
	for {
		m, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return ok, failed, nil
		}
		if err != nil {
			return ok, failed, err
		}
		res, rerr := q.redrive(ctx, q.entry(m))
		if rerr != nil {
			failed++
			if ctx.Err() != nil {
				return ok, failed, context.Cause(ctx)
			}
		} else {
			ok++
		}
		if done != nil {
			done(res, rerr)
		}
	}
}

// Purge deletes the dead letter at seq and returns it.
func (q *DLQ) Purge(ctx context.Context, seq uint64) (DLQEntry, error) {
	e, err := q.Get(ctx, seq)
	if err != nil {
		return DLQEntry{}, err
	}
	if err := q.delete(ctx, seq); err != nil {
		return DLQEntry{}, fmt.Errorf("purge dead letter %d: %w", seq, err)
	}
	return e, nil
}

// PurgeAll deletes every dead letter whose original subject matches the
// subject pattern ("" matches all) that was stored when it began, and returns
// how many it deleted. Dead letters stored meanwhile are kept.
func (q *DLQ) PurgeAll(ctx context.Context, subject string) (uint64, error) {
	s, err := q.js.Stream(ctx, q.topo.DLQ)
	if err != nil {
		return 0, fmt.Errorf("purge %s: %w", q.topo.DLQ, err)
	}
	var opts []jetstream.StreamInfoOpt
	f := q.filter(subject)
	if f != nil {
		opts = append(opts, jetstream.WithSubjectFilter(f[0]))
	}
	info, err := s.Info(ctx, opts...)
	if err != nil {
		return 0, fmt.Errorf("purge %s: %w", q.topo.DLQ, err)
	}
	n := info.State.Msgs
	if f != nil {
		n = 0
		for _, c := range info.State.Subjects {
			n += c
		}
	}
	if n == 0 {
		return 0, nil
	}
	popts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSequence(info.State.LastSeq + 1)}
	if f != nil {
		popts = append(popts, jetstream.WithPurgeSubject(f[0]))
	}
	if err := s.Purge(ctx, popts...); err != nil {
		return 0, fmt.Errorf("purge %s: %w", q.topo.DLQ, err)
	}
	return n, nil
}

func (q *DLQ) delete(ctx context.Context, seq uint64) error {
	s, err := q.js.Stream(ctx, q.topo.DLQ)
	if err != nil {
		return err
	}
	if err := s.DeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) || strings.Contains(err.Error(), "no message found") {
			return fmt.Errorf("%w: %d in %s", ErrDeadLetterNotFound, seq, q.topo.DLQ)
		}
		return err
	}
	return nil
}
