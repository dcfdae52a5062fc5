package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PublisherConfig tunes a Publisher. The zero value is valid.
type PublisherConfig struct {
	// Attempts bounds how often one message is tried. Defaults to 5.
	Attempts int
	// RetryWait is the first wait between attempts; it doubles each time.
	// Defaults to 100ms.
	RetryWait time.Duration
	// AttemptTimeout bounds the wait for one PubAck. Defaults to
	// RequestTimeoutDefault.
	AttemptTimeout time.Duration
	// MaxPending bounds async publishes awaiting their PubAck. Defaults to
	// 4000.
	MaxPending int
}

func (c PublisherConfig) withDefaults() PublisherConfig {
	if c.Attempts <= 0 {
		c.Attempts = 5
	}
	if c.RetryWait <= 0 {
		c.RetryWait = 100 * time.Millisecond
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = RequestTimeoutDefault
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 4000
	}
	return c
}

// Publisher stores alerts with a Nats-Msg-Id each, so that a publish retried
// after a timeout or a reconnect is stored once (within the duplicate window).
type Publisher struct {
	js  jetstream.JetStream
	cfg PublisherConfig
}

// NewPublisher returns a Publisher on js.
func NewPublisher(js jetstream.JetStream, cfg PublisherConfig) *Publisher {
	return &Publisher{js: js, cfg: cfg.withDefaults()}
}

// ErrNoMsgID is returned for a message without a Nats-Msg-Id header.
var ErrNoMsgID = errors.New("stream: message has no Nats-Msg-Id")

// Publish stores msg, which must carry a Nats-Msg-Id header, and waits for
// the PubAck, retrying with the same id on timeouts and disconnects. A msg
// without a W3C traceparent header gets one (see EnsureTraceparent).
func (p *Publisher) Publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	id := msg.Header.Get(nats.MsgIdHdr)
	if id == "" {
		return nil, ErrNoMsgID
	}
	EnsureTraceparent(ctx, msg.Header)
	wait := p.cfg.RetryWait
	var err error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.cfg.AttemptTimeout)
		var ack *jetstream.PubAck
		ack, err = p.js.PublishMsg(actx, msg, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return ack, nil
		}
		if ctx.Err() != nil || !retryable(err) || attempt >= p.cfg.Attempts {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait *= 2
	}
	return nil, fmt.Errorf("publish %s (id %s): %w", msg.Subject, id, err)
}

// retryable reports whether a publish error may succeed when tried again with
// the same id. Errors the server gave an answer for (payload too large, no
// stream for the subject, wrong expectations) will not.
func retryable(err error) bool {
	switch {
	case errors.Is(err, nats.ErrMaxPayload),
		errors.Is(err, nats.ErrBadSubject),
		errors.Is(err, nats.ErrConnectionClosed):
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 500 || apiErr.Code == 408 || apiErr.Code == 503
	}
	return true
}

// Result is the outcome of one message of a batch.
type Result struct {
	// Index of the message in the batch.
	Index int
	Ack   *jetstream.PubAck
	Err   error
}

// PublishBatch stores msgs with async publishes, up to MaxPending in flight,
// and calls done once per message from the calling goroutine. A
// future failed by a disconnect or timeout is retried synchronously with the
// same id; the message may already be stored, and the id makes it count once.
// It returns the number of messages that failed.
func (p *Publisher) PublishBatch(ctx context.Context, msgs []*nats.Msg, done func(Result)) int {
	type pending struct {
		i int
		f jetstream.PubAckFuture
	}
	window := make(chan pending, p.cfg.MaxPending)
	failed := 0
	finish := func(pd pending) {
		var r Result
		r.Index = pd.i
		select {
		case r.Ack = <-pd.f.Ok():
		case err := <-pd.f.Err():
			r.Ack, r.Err = p.Publish(ctx, msgs[pd.i])
			if r.Err != nil {
				r.Err = fmt.Errorf("%w (async: %w)", r.Err, err)
			}
		case <-ctx.Done():
			r.Err = context.Cause(ctx)
		}
		if r.Err != nil {
			failed++
		}
		if done != nil {
			done(r)
		}
	}
	for i, msg := range msgs {
		if ctx.Err() != nil {
			if done != nil {
				done(Result{Index: i, Err: context.Cause(ctx)})
			}
			failed++
			continue
		}
		id := msg.Header.Get(nats.MsgIdHdr)
		if id == "" {
			if done != nil {
				done(Result{Index: i, Err: ErrNoMsgID})
			}
			failed++
			continue
		}
		EnsureTraceparent(ctx, msg.Header)
		if len(window) == cap(window) {
			finish(<-window)
		}
		// The id is in msg's header already: jetstream.WithMsgID would
		// allocate options and set it again.
		f, err := p.js.PublishMsgAsync(msg)
		if err != nil {
			ack, err := p.Publish(ctx, msg)
			if err != nil {
				failed++
			}
			if done != nil {
				done(Result{Index: i, Ack: ack, Err: err})
			}
			continue
		}
		window <- pending{i: i, f: f}
	}
	for len(window) > 0 {
		finish(<-window)
	}
	return failed
}
