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
// channel the read loop hands the reply to, and timers it reuses; the
// reply subject carries a count, so that the reply of an ack that timed
// out is not taken for the next one's.
//
// A consumer leader that steps down or dies drops the acks it has not
// confirmed, and nothing tells the client; the new leader confirms only
// what is sent to it. So an ack still unconfirmed after resend is sent
// again, with the same reply subject, once per resend until timeout (an
// ack is idempotent), and an ack refused for want of a leader (the
// no-responders status) waits for the next resend the same way.
type confirmer struct {
	nc      *nats.Conn
	prefix  string // the worker's reply subjects: prefix + count
	replies chan *nats.Msg
	sub     *nats.Subscription
	timer   *time.Timer // timeout
	again   *time.Timer // resend
	timeout time.Duration
	resend  time.Duration
	n       uint64
}

// ackBody is what an ack sends (nats.go jetstream's ackAck).
var ackBody = []byte("+ACK")

// newConfirmer subscribes to the replies of the worker's acks, under inbox
// (unique to the processor); each ack waits up to timeout, and is sent
// again every resend while it waits.
func newConfirmer(nc *nats.Conn, inbox string, worker int, timeout, resend time.Duration) (*confirmer, error) {
	c := &confirmer{
		nc:      nc,
		prefix:  inbox + "." + strconv.Itoa(worker) + ".",
		replies: make(chan *nats.Msg, 16), // one wanted, the rest stale or resent
		timeout: timeout,
		resend:  resend,
	}
	sub, err := nc.ChanSubscribe(c.prefix+"*", c.replies)
	if err != nil {
		return nil, fmt.Errorf("subscribe to ack confirmations: %w", err)
	}
	c.sub = sub
	c.timer = time.NewTimer(timeout)
	c.timer.Stop()
	c.again = time.NewTimer(resend)
	c.again.Stop()
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
	c.again.Reset(c.resend)
	defer c.again.Stop()
	var refused bool // the last answer was no responders
	for {
		select {
		case m := <-c.replies:
			if m.Subject != reply {
				continue // the late confirmation of an ack that timed out
			}
			if len(m.Data) == 0 && m.Header.Get(statusHeader) == noResponders {
				refused = true // no consumer leader now: the resend asks the next
				continue
			}
			return nil
		case <-c.again.C:
			if err := c.nc.PublishRequest(subject, reply, ackBody); err != nil {
				return err
			}
			c.again.Reset(c.resend)
		case <-c.timer.C:
			if refused {
				return nats.ErrNoResponders // the consumer is gone
			}
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
