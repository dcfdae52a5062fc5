package processor

import (
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// confirmer sends one worker's acks with DoubleAck and waits for the
// server's confirmation, as jetstream.Msg.DoubleAck does, for less per ack.
// DoubleAck is a request: nats.go makes a channel, a response-map entry
// under the connection's lock and a timer for each, and its reply goes
// from the read loop to the response goroutine before it reaches the
// worker. Here each worker has a reply subscription of its own, whose
// channel the read loop hands the reply to, and a timer it reuses; the
// reply subject carries a count, so that the reply of an ack that timed
// out is not taken for the next one's.
type confirmer struct {
	nc      *nats.Conn
	prefix  string // the worker's reply subjects: prefix + count
	replies chan *nats.Msg
	sub     *nats.Subscription
	timer   *time.Timer
	timeout time.Duration
	n       uint64
}

// ackBody is what an ack sends (nats.go jetstream's ackAck).
var ackBody = []byte("+ACK")

// newConfirmer subscribes to the replies of the worker's acks, under inbox
// (unique to the processor), and waits timeout for each.
func newConfirmer(nc *nats.Conn, inbox string, worker int, timeout time.Duration) (*confirmer, error) {
	c := &confirmer{
		nc:      nc,
		prefix:  inbox + "." + strconv.Itoa(worker) + ".",
		replies: make(chan *nats.Msg, 4), // one wanted, the rest stale
		timeout: timeout,
	}
	sub, err := nc.ChanSubscribe(c.prefix+"*", c.replies)
	if err != nil {
		return nil, fmt.Errorf("subscribe to ack confirmations: %w", err)
	}
	c.sub = sub
	c.timer = time.NewTimer(timeout)
	c.timer.Stop()
	return c, nil
}

// ack acknowledges the delivery whose ack subject is subject (its
// jetstream.Msg.Reply) and waits until the server confirms it, or timeout.
func (c *confirmer) ack(subject string) error {
	c.n++
	reply := c.prefix + strconv.FormatUint(c.n, 10)
	if err := c.nc.PublishRequest(subject, reply, ackBody); err != nil {
		return err
	}
	c.timer.Reset(c.timeout)
	defer c.timer.Stop()
	for {
		select {
		case m := <-c.replies:
			if m.Subject != reply {
				continue // the late confirmation of an ack that timed out
			}
			if len(m.Data) == 0 && m.Header.Get(statusHeader) == noResponders {
				return nats.ErrNoResponders // the consumer is gone
			}
			return nil
		case <-c.timer.C:
			return fmt.Errorf("ack not confirmed within %s: %w", c.timeout, nats.ErrTimeout)
		}
	}
}

// The status header, and its value when nothing subscribes to a request's
// subject (nats.go's statusHdr and noResponders).
const (
	statusHeader = "Status"
	noResponders = "503"
)

func (c *confirmer) close() { _ = c.sub.Unsubscribe() }
