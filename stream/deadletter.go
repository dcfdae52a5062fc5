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

// Dead letters, in one place: the headers that say why an alert was
// dead-lettered and where it came from, the reasons, publishing to the DLQ
// stream (the processor calls PublishDeadLetter) and the admin behind
// `reactor dlq` (ls, show, redrive, purge).

// Dead-letter headers: why an alert was dead-lettered and where it came from.
// Original headers are kept, except Nats-* ones; the original Nats-Msg-Id is
// in HeaderMsgID.
const (
	HeaderReason       = "Reactor-Reason"        // permanent, max_deliveries, no_handler
	HeaderError        = "Reactor-Error"         // the handler's error, newlines escaped
	HeaderEntry        = "Reactor-Entry"         // the entry that took it: a rule entry's name, or a router pattern
	HeaderSubject      = "Reactor-Subject"       // the original subject
	HeaderStream       = "Reactor-Stream"        // the stream it was delivered from
	HeaderSequence     = "Reactor-Sequence"      // its sequence in that stream
	HeaderGroup        = "Reactor-Group"         // the consumer group
	HeaderDeliveries   = "Reactor-Deliveries"    // deliveries made
	HeaderFirstAttempt = "Reactor-First-Attempt" // RFC 3339
	HeaderLastAttempt  = "Reactor-Last-Attempt"  // RFC 3339
	HeaderQueued       = "Reactor-Queued"        // when that stream stored it, RFC 3339
	HeaderMsgID        = "Reactor-Msg-Id"        // the original Nats-Msg-Id
	HeaderTruncated    = "Reactor-Truncated"     // the payload's original size, when cut to fit
	// HeaderRedrivenFrom marks an alert put back into processing from the
	// DLQ: its value is the dead letter's sequence in the DLQ stream.
	HeaderRedrivenFrom = "Reactor-Redriven-From"
)

// Dead-letter reasons.
const (
	ReasonPermanent     = "permanent"
	ReasonMaxDeliveries = "max_deliveries"
	ReasonNoHandler     = "no_handler"
)

// maxErrorHeader bounds the error text kept in a header; a panic stack can be
// long.
const maxErrorHeader = 8 << 10

// DeadLetter is a dead-lettered alert: its payload and why it failed.
type DeadLetter struct {
	Subject      string // the original subject
	Data         []byte
	Header       nats.Header // the original headers, without Nats-*
	Reason       string
	Error        string
	Entry        string
	Stream       string
	Sequence     uint64
	Group        string
	Deliveries   int
	FirstAttempt time.Time
	LastAttempt  time.Time
	Queued       time.Time
	MsgID        string
	// Truncated is the payload's original size when it was cut to fit the
	// DLQ (see fitPayload), else 0.
	Truncated int
	// RedrivenFrom is the dead letter the alert was redriven from, when it
	// failed again after a redrive (HeaderRedrivenFrom), else 0.
	RedrivenFrom uint64
	// DLQSequence is the dead letter's own sequence in the DLQ stream, when
	// read back from it.
	DLQSequence uint64
}

// Msg builds the message stored in the DLQ on subject. The original's
// Reactor-* headers are dropped, except HeaderRedrivenFrom: an alert that
// fails again after a redrive says which dead letter it came from.
func (d DeadLetter) Msg(subject string) *nats.Msg {
	msg := nats.NewMsg(subject)
	msg.Data = d.Data
	for k, vs := range d.Header {
		if strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, "Reactor-") {
			continue
		}
		msg.Header[k] = vs
	}
	set := func(k, v string) {
		if v != "" {
			msg.Header.Set(k, v)
		}
	}
	set(HeaderReason, d.Reason)
	set(HeaderError, escapeHeader(truncate(d.Error, maxErrorHeader)))
	set(HeaderEntry, d.Entry)
	set(HeaderSubject, d.Subject)
	set(HeaderStream, d.Stream)
	set(HeaderSequence, strconv.FormatUint(d.Sequence, 10))
	set(HeaderGroup, d.Group)
	set(HeaderDeliveries, strconv.Itoa(d.Deliveries))
	set(HeaderFirstAttempt, formatTime(d.FirstAttempt))
	set(HeaderLastAttempt, formatTime(d.LastAttempt))
	set(HeaderQueued, formatTime(d.Queued))
	set(HeaderMsgID, d.MsgID)
	from := d.Header.Get(HeaderRedrivenFrom)
	if d.RedrivenFrom > 0 {
		from = strconv.FormatUint(d.RedrivenFrom, 10)
	}
	set(HeaderRedrivenFrom, from)
	return msg
}

// ParseDeadLetter reads a dead letter back from a DLQ message.
func ParseDeadLetter(subject string, data []byte, h nats.Header) DeadLetter {
	d := DeadLetter{
		Subject: h.Get(HeaderSubject),
		Data:    data,
		Header:  nats.Header{},
		Reason:  h.Get(HeaderReason),
		Error:   unescapeHeader(h.Get(HeaderError)),
		Entry:   h.Get(HeaderEntry),
		Stream:  h.Get(HeaderStream),
		Group:   h.Get(HeaderGroup),
		MsgID:   h.Get(HeaderMsgID),
	}
	if d.Subject == "" {
		_, d.Subject, _ = strings.Cut(subject, ".")
	}
	d.Sequence, _ = strconv.ParseUint(h.Get(HeaderSequence), 10, 64)
	d.Deliveries, _ = strconv.Atoi(h.Get(HeaderDeliveries))
	d.FirstAttempt, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderFirstAttempt))
	d.LastAttempt, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderLastAttempt))
	d.Queued, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderQueued))
	d.Truncated, _ = strconv.Atoi(h.Get(HeaderTruncated))
	d.RedrivenFrom, _ = strconv.ParseUint(h.Get(HeaderRedrivenFrom), 10, 64)
	for k, vs := range h {
		if !strings.HasPrefix(k, "Reactor-") && !strings.HasPrefix(k, "Nats-") {
			d.Header[k] = vs
		}
	}
	return d
}

// publishOverhead is room left for the headers a publish adds (Nats-Msg-Id,
// Nats-Expected-Stream) and the protocol line.
const publishOverhead = 512

// fitPayload cuts msg's data so that msg fits in maxPayload bytes, recording
// the original size in HeaderTruncated. A dead letter carries the alert's
// payload plus headers: an alert close to the server's max payload would not
// fit in the DLQ otherwise, and would stay queued for ever.
func fitPayload(msg *nats.Msg, maxPayload int64) {
	over := int64(msg.Size()) + publishOverhead - maxPayload
	if maxPayload <= 0 || over <= 0 {
		return
	}
	size := len(msg.Data)
	msg.Header.Set(HeaderTruncated, strconv.Itoa(size))
	keep := max(int64(size)-over-int64(len(HeaderTruncated)+16), 0)
	msg.Data = msg.Data[:keep]
}

// PublishDeadLetter stores d in t's DLQ stream and waits for the PubAck. Its
// message id is <stream>-<seq>-<group> of the alert, so a dead letter
// published twice by its group (a crash between the publish and the alert's
// termination) is kept once, and the dead letters of two groups that both
// failed the alert are both kept. The payload is cut to fit the server's
// max payload (see fitPayload).
func PublishDeadLetter(ctx context.Context, js jetstream.JetStream, t Topology, d DeadLetter) error {
	t = t.WithDefaults()
	out := d.Msg(t.DLQSubject(d.Subject))
	fitPayload(out, js.Conn().MaxPayload())
	id := fmt.Sprintf("%s-%d-%s", d.Stream, d.Sequence, d.Group)
	if _, err := js.PublishMsg(ctx, out, jetstream.WithMsgID(id), jetstream.WithExpectStream(t.DLQ)); err != nil {
		return fmt.Errorf("publish dead letter %s: %w", id, classify(err))
	}
	return nil
}

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

// Redriven is a dead letter put back into processing for its group.
type Redriven struct {
	// DLQSequence is the dead letter's sequence in the DLQ stream.
	DLQSequence uint64
	// Subject is the alert's original subject, which its handlers see.
	Subject string
	// Group is the group that dead-lettered it and handles it again; empty
	// when the dead letter names none, and then every group does.
	Group string
	// StoredSubject is the subject it was stored on: the group's redrive
	// subject (see Topology.RedriveSubject), or Subject without a group.
	StoredSubject string
	// Stream and Sequence say where the alert stream stored it.
	Stream   string
	Sequence uint64
	// MsgID is the new Nats-Msg-Id.
	MsgID string
	// Duplicate reports that the alert stream already had this redrive
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

// List returns the newest limit dead letters (0 means all), newest first,
// whose original subject matches the subject pattern ("" matches all), and
// how many matched in total.
func (q *DLQ) List(ctx context.Context, subject string, limit int) ([]DLQEntry, uint64, error) {
	filter := q.filter(subject)
	page, err := ReadNewest(ctx, q.js, q.topo.DLQ, NewestOptions{FilterSubjects: filter, Want: limit})
	if err != nil {
		return nil, 0, err
	}
	out := make([]DLQEntry, 0, len(page.Msgs))
	for _, m := range page.Msgs {
		out = append(out, q.entry(m))
	}
	total := uint64(len(out))
	if limit > 0 && len(out) == limit {
		// Cut: count them all, as the server does for a filtered read.
		r, err := NewReader(ctx, q.js, q.topo.DLQ, ReadOptions{FilterSubjects: filter})
		if err != nil {
			return out, total, err
		}
		total = max(total, r.Pending())
		r.Close()
	}
	return out, total, nil
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

// Redrive puts the dead letter at seq back into processing for the group
// that dead-lettered it (its Reactor-Group header), and for no other group:
// it publishes it to the alert stream on that group's redrive subject
// (Topology.RedriveSubject), which only that group's consumer filters, with
// its original headers, a new Nats-Msg-Id and HeaderRedrivenFrom. The
// processor hands it to the handlers under its original subject. It waits
// for the PubAck, and only then deletes it from the DLQ. A dead letter
// without a group goes back on its original subject, to every group.
//
// The new id is derived from the dead letter (the DLQ stream and sequence,
// and the stream and sequence it failed at), so a redrive that is retried
// after a failure to delete is stored once within the duplicate window.
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
	subject := e.Subject
	if e.Group != "" {
		subject = q.topo.RedriveSubject(e.Group, e.Subject)
	}
	msg := nats.NewMsg(subject)
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
	out := Redriven{DLQSequence: seq, Subject: e.Subject, Group: e.Group, StoredSubject: subject, Stream: ack.Stream, Sequence: ack.Sequence, MsgID: id, Duplicate: ack.Duplicate}
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

// escapeHeader makes s fit in one header value: backslashes, newlines,
// carriage returns and tabs are escaped as \\, \n, \r and \t.
func escapeHeader(s string) string {
	return headerEscaper.Replace(s)
}

// unescapeHeader reverses escapeHeader.
func unescapeHeader(s string) string {
	return headerUnescaper.Replace(s)
}

var (
	headerEscaper   = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	headerUnescaper = strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\r`, "\r", `\t`, "\t")
)

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d bytes truncated)", len(s)-n)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
