package stream

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Dead-letter headers: why an alert was dead-lettered and where it came from.
// Original headers are kept, except Nats-* ones; the original Nats-Msg-Id is
// in HeaderMsgID.
const (
	HeaderReason       = "Reactor-Reason"        // permanent, max_deliveries, no_handler
	HeaderError        = "Reactor-Error"         // the handler's error, newlines escaped
	HeaderPattern      = "Reactor-Pattern"       // the handler pattern that matched
	HeaderSubject      = "Reactor-Subject"       // the original subject
	HeaderStream       = "Reactor-Stream"        // the work stream
	HeaderSequence     = "Reactor-Sequence"      // the sequence in the work stream
	HeaderOrigin       = "Reactor-Origin"        // history stream and sequence, "ALERTS 42"
	HeaderGroup        = "Reactor-Group"         // the consumer group
	HeaderDeliveries   = "Reactor-Deliveries"    // deliveries made
	HeaderFirstAttempt = "Reactor-First-Attempt" // RFC 3339
	HeaderLastAttempt  = "Reactor-Last-Attempt"  // RFC 3339
	HeaderQueued       = "Reactor-Queued"        // when the work stream stored it, RFC 3339
	HeaderMsgID        = "Reactor-Msg-Id"        // the original Nats-Msg-Id
	HeaderTruncated    = "Reactor-Truncated"     // the payload's original size, when cut to fit
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
	Pattern      string
	Stream       string
	Sequence     uint64
	Origin       string
	Group        string
	Deliveries   int
	FirstAttempt time.Time
	LastAttempt  time.Time
	Queued       time.Time
	MsgID        string
	// Truncated is the payload's original size when it was cut to fit the
	// DLQ (see FitPayload), else 0.
	Truncated int
	// DLQSequence is the dead letter's own sequence in the DLQ stream, when
	// read back from it.
	DLQSequence uint64
}

// Msg builds the message stored in the DLQ on subject.
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
	set(HeaderError, EscapeHeader(truncate(d.Error, maxErrorHeader)))
	set(HeaderPattern, d.Pattern)
	set(HeaderSubject, d.Subject)
	set(HeaderStream, d.Stream)
	set(HeaderSequence, strconv.FormatUint(d.Sequence, 10))
	set(HeaderOrigin, d.Origin)
	set(HeaderGroup, d.Group)
	set(HeaderDeliveries, strconv.Itoa(d.Deliveries))
	set(HeaderFirstAttempt, formatTime(d.FirstAttempt))
	set(HeaderLastAttempt, formatTime(d.LastAttempt))
	set(HeaderQueued, formatTime(d.Queued))
	set(HeaderMsgID, d.MsgID)
	return msg
}

// ParseDeadLetter reads a dead letter back from a DLQ message.
func ParseDeadLetter(subject string, data []byte, h nats.Header) DeadLetter {
	d := DeadLetter{
		Subject: h.Get(HeaderSubject),
		Data:    data,
		Header:  nats.Header{},
		Reason:  h.Get(HeaderReason),
		Error:   UnescapeHeader(h.Get(HeaderError)),
		Pattern: h.Get(HeaderPattern),
		Stream:  h.Get(HeaderStream),
		Origin:  h.Get(HeaderOrigin),
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

// FitPayload cuts msg's data so that msg fits in maxPayload bytes, recording
// the original size in HeaderTruncated. A dead letter carries the alert's
// payload plus headers: an alert close to the server's max payload would not
// fit in the DLQ otherwise, and would stay queued for ever.
func FitPayload(msg *nats.Msg, maxPayload int64) {
	over := int64(msg.Size()) + publishOverhead - maxPayload
	if maxPayload <= 0 || over <= 0 {
		return
	}
	size := len(msg.Data)
	msg.Header.Set(HeaderTruncated, strconv.Itoa(size))
	keep := max(int64(size)-over-int64(len(HeaderTruncated)+16), 0)
	msg.Data = msg.Data[:keep]
}

// OriginOf returns the history stream and sequence a sourced message came
// from, read from its Nats-Stream-Source header, as "ALERTS 42".
func OriginOf(h nats.Header) string {
	src := h.Get("Nats-Stream-Source")
	fields := strings.Fields(src)
	if len(fields) < 2 {
		return ""
	}
	name, _, _ := strings.Cut(fields[0], ":")
	return name + " " + fields[1]
}

// EscapeHeader makes s fit in one header value: backslashes, newlines,
// carriage returns and tabs are escaped as \\, \n, \r and \t.
func EscapeHeader(s string) string {
	return headerEscaper.Replace(s)
}

// UnescapeHeader reverses EscapeHeader.
func UnescapeHeader(s string) string {
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
