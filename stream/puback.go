package stream

import (
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fastjson"
)

// ackRouter sends a Publisher's messages (PublishBatch's and Publish's)
// with a reply subject of its own each, under one wildcard subscription of
// the Publisher's connection, and hands every PubAck to the call waiting
// for it.
//
// It stands in for nats.go's PublishMsgAsync because of what that costs per
// message for a publisher that must give up on a PubAck: a future with two
// channels, each made under the publisher's lock, and, for the future to
// fail at all when its PubAck never comes, a timer of its own
// (WithPublishAsyncTimeout). Here a batch has one timer and one channel, and
// a send costs a map entry and its reply subject.
type ackRouter struct {
	nc *nats.Conn

	mu      sync.Mutex
	sub     *nats.Subscription // nil until the first send
	prefix  string             // "<inbox>.": a send's reply subject is prefix + its token
	next    uint64             // the last token given out
	waiting map[uint64]ackWaiter
}

// ackWaiter is where the PubAck of one send goes: the batch's channel,
// which has room for a result of every send the batch has in flight.
type ackWaiter struct {
	ch   chan<- ackResult
	slot int
}

// ackResult is the answer to one send.
type ackResult struct {
	token uint64
	slot  int
	ack   *jetstream.PubAck
	err   error
}

// send publishes msg with a fresh reply subject whose answer goes to ch,
// tagged with slot, and returns the send's token.
func (r *ackRouter) send(msg *nats.Msg, ch chan<- ackResult, slot int) (uint64, error) {
	r.mu.Lock()
	if r.sub == nil {
		if err := r.subscribe(); err != nil {
			r.mu.Unlock()
			return 0, err
		}
	}
	r.next++
	token := r.next
	r.waiting[token] = ackWaiter{ch: ch, slot: slot}
	prefix := r.prefix
	r.mu.Unlock()

	var buf [64]byte
	reply := string(strconv.AppendUint(append(buf[:0], prefix...), token, 10))
	out := nats.Msg{Subject: msg.Subject, Reply: reply, Header: msg.Header, Data: msg.Data}
	if err := r.nc.PublishMsg(&out); err != nil {
		r.forget(token)
		return 0, err
	}
	return token, nil
}

// subscribe starts the wildcard subscription. r.mu is held.
func (r *ackRouter) subscribe() error {
	prefix := r.nc.NewInbox() + "."
	sub, err := r.nc.Subscribe(prefix+"*", r.deliver)
	if err != nil {
		return err
	}
	r.sub, r.prefix, r.waiting = sub, prefix, make(map[uint64]ackWaiter)
	return nil
}

// forget stops waiting for token's answer, and reports whether it was
// still awaited: false means the answer is on its way to the batch's
// channel, or was delivered already.
func (r *ackRouter) forget(token uint64) bool {
	r.mu.Lock()
	_, ok := r.waiting[token]
	delete(r.waiting, token)
	r.mu.Unlock()
	return ok
}

// deliver hands a PubAck (or the error the server answered with) to its
// batch. An answer nobody waits for any more is dropped.
func (r *ackRouter) deliver(m *nats.Msg) {
	r.mu.Lock()
	token, err := strconv.ParseUint(m.Subject[min(len(r.prefix), len(m.Subject)):], 10, 64)
	w, ok := r.waiting[token]
	delete(r.waiting, token)
	r.mu.Unlock()
	if err != nil || !ok {
		return
	}
	res := ackResult{token: token, slot: w.slot}
	res.ack, res.err = decodePubAck(m)
	w.ch <- res // never blocks: the channel has room for every send in flight
}

// pubAckParsers parse the server's answers to publishes: one per
// answer, without the reflection and the allocations of encoding/json,
// which nats.go's PublishMsgAsync spends on each.
var pubAckParsers fastjson.ParserPool

// decodePubAck reads the server's answer to a publish as nats.go's
// PublishMsgAsync does: a PubAck, or the API error the server answered
// with.
func decodePubAck(m *nats.Msg) (*jetstream.PubAck, error) {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return nil, jetstream.ErrNoStreamResponse // no stream for the subject, or no leader now
	}
	p := pubAckParsers.Get()
	defer pubAckParsers.Put(p)
	v, err := p.ParseBytes(m.Data)
	if err != nil || v.Type() != fastjson.TypeObject {
		return nil, jetstream.ErrInvalidJSAck
	}
	if e := v.Get("error"); e != nil && e.Type() != fastjson.TypeNull {
		if e.Type() != fastjson.TypeObject {
			return nil, jetstream.ErrInvalidJSAck
		}
		return nil, &jetstream.APIError{
			Code:        e.GetInt("code"),
			ErrorCode:   jetstream.ErrorCode(e.GetUint("err_code")),
			Description: string(e.GetStringBytes("description")),
		}
	}
	ack := &jetstream.PubAck{
		Stream:    string(v.GetStringBytes("stream")),
		Sequence:  v.GetUint64("seq"),
		Duplicate: v.GetBool("duplicate"),
		Domain:    string(v.GetStringBytes("domain")),
		Value:     string(v.GetStringBytes("val")),
	}
	if ack.Stream == "" {
		return nil, jetstream.ErrInvalidJSAck
	}
	return ack, nil
}
