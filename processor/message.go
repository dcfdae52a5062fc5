package processor

import (
	"time"

	"github.com/nats-io/nats.go"
)

// Message is what a handler sees of one delivery: the subject, payload,
// headers and delivery metadata. It is read-only; the processor owns the
// acknowledgement. Data and Header return the underlying storage, which
// handlers must not modify.
type Message struct {
	subject   string
	data      []byte
	header    nats.Header
	stream    string
	sequence  uint64
	delivered int
	timestamp time.Time
}

// MessageInfo carries the delivery metadata of a Message built by NewMessage.
type MessageInfo struct {
	// Stream is the stream the message was read from.
	Stream string
	// Sequence is the message's sequence in Stream.
	Sequence uint64
	// Delivered counts deliveries, starting at 1.
	Delivered int
	// Timestamp is when the stream stored the message.
	Timestamp time.Time
}

// NewMessage builds a Message, for replaying stored alerts through a Router
// and for testing handlers. A zero Delivered is taken as 1.
func NewMessage(subject string, data []byte, header nats.Header, info MessageInfo) *Message {
	if info.Delivered < 1 {
		info.Delivered = 1
	}
	return &Message{
		subject:   subject,
		data:      data,
		header:    header,
		stream:    info.Stream,
		sequence:  info.Sequence,
		delivered: info.Delivered,
		timestamp: info.Timestamp,
	}
}

// Subject is the subject the alert was published on, e.g. "alerts.disk_full".
func (m *Message) Subject() string { return m.subject }

// Data is the payload.
func (m *Message) Data() []byte { return m.data }

// Header returns the value of the header key, or "".
func (m *Message) Header(key string) string {
	if m.header == nil {
		return ""
	}
	return m.header.Get(key)
}

// Headers returns all headers. The map must not be modified.
func (m *Message) Headers() nats.Header { return m.header }

// ID is the publisher's message id (the Nats-Msg-Id header), or "".
func (m *Message) ID() string { return m.Header(nats.MsgIdHdr) }

// Stream is the name of the stream the message was delivered from.
func (m *Message) Stream() string { return m.stream }

// Sequence is the message's sequence in its stream.
func (m *Message) Sequence() uint64 { return m.sequence }

// Delivered is the delivery count: 1 on the first attempt. Deliveries that
// ended in Defer are not counted.
func (m *Message) Delivered() int { return m.delivered }

// Timestamp is when the stream stored the message.
func (m *Message) Timestamp() time.Time { return m.timestamp }
