package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PublisherConfig tunes a Publisher. The zero value is valid.
type PublisherConfig struct {
	// Attempts bounds how often one message is sent, resends included.
	// Defaults to 10.
	Attempts int
	// RetryWait is the wait after a failed attempt; it doubles with each
	// failure, up to ResendAfter. Defaults to 100ms.
	RetryWait time.Duration
	// ResendAfter is how long a send may go without its PubAck before the
	// message is sent again with the same id, while the earlier sends
	// still wait for theirs (the first PubAck wins; the id makes it count
	// once). A stream leader that steps down or dies drops the publishes
	// it has not answered, and nothing tells the client: without a resend
	// the wait would be AttemptTimeout. Defaults to ResendAfterDefault, at
	// most AttemptTimeout.
	ResendAfter time.Duration
	// AttemptTimeout bounds the wait for one send's PubAck. Defaults to
	// RequestTimeoutDefault.
	AttemptTimeout time.Duration
	// MaxPending bounds async publishes awaiting their PubAck. Defaults to
	// 4000.
	MaxPending int
}

// PublisherConfig's defaults.
const (
	PublishAttemptsDefault = 10
	RetryWaitDefault       = 100 * time.Millisecond
	ResendAfterDefault     = 500 * time.Millisecond
	MaxPendingDefault      = 4000
)

func (c PublisherConfig) withDefaults() PublisherConfig {
	if c.Attempts <= 0 {
		c.Attempts = PublishAttemptsDefault
	}
	if c.RetryWait <= 0 {
		c.RetryWait = RetryWaitDefault
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = RequestTimeoutDefault
	}
	if c.ResendAfter <= 0 {
		c.ResendAfter = ResendAfterDefault
	}
	c.ResendAfter = min(c.ResendAfter, c.AttemptTimeout)
	c.RetryWait = min(c.RetryWait, c.ResendAfter)
	if c.MaxPending <= 0 {
		c.MaxPending = MaxPendingDefault
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
// the PubAck. A send unanswered after ResendAfter is sent again while it
// still waits, and a failed one is retried after RetryWait (doubling, up to
// ResendAfter), all with the same id, until Attempts sends. A msg without a
// W3C traceparent header gets one (see EnsureTraceparent). msg must not be
// changed until Publish returns; no send outlives it.
func (p *Publisher) Publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	id := msg.Header.Get(nats.MsgIdHdr)
	if id == "" {
		return nil, ErrNoMsgID
	}
	EnsureTraceparent(ctx, msg.Header)
	ctx, cancel := context.WithCancel(ctx)
	var sends sync.WaitGroup
	defer sends.Wait() // none reads msg once Publish returns
	defer cancel()     // the sends still waiting give up
	type result struct {
		ack *jetstream.PubAck
		err error
	}
	results := make(chan result, p.cfg.Attempts) // never blocks a send
	send := func() {
		sends.Add(1)
		go func() {
			defer sends.Done()
			actx, cancel := context.WithTimeout(ctx, p.cfg.AttemptTimeout)
			defer cancel()
			// The id is in msg's header already: no WithMsgID, which would
			// write the header while another send reads it.
			ack, err := p.js.PublishMsg(actx, msg)
			results <- result{ack, err}
		}()
	}
	send()
	sent, waiting := 1, 1
	next := time.NewTimer(p.cfg.ResendAfter)
	defer next.Stop()
	wait := p.cfg.RetryWait
	var err error
	for {
		select {
		case r := <-results:
			waiting--
			if r.err == nil {
				return r.ack, nil
			}
			if err == nil || !errors.Is(r.err, context.DeadlineExceeded) {
				err = r.err // a timeout says less than what failed before it
			}
			if ctx.Err() == nil && !retryable(r.err) {
				return nil, fmt.Errorf("publish %s (id %s): %w", msg.Subject, id, classify(r.err))
			}
			if waiting == 0 {
				if sent >= p.cfg.Attempts {
					return nil, fmt.Errorf("publish %s (id %s): %d attempts: %w", msg.Subject, id, sent, err)
				}
				next.Reset(wait)
				wait = min(2*wait, p.cfg.ResendAfter)
			}
		case <-next.C:
			if sent < p.cfg.Attempts {
				send()
				sent++
				waiting++
				next.Reset(p.cfg.ResendAfter)
			}
		case <-ctx.Done():
			if err == nil {
				return nil, fmt.Errorf("publish %s (id %s): %w", msg.Subject, id, context.Cause(ctx))
			}
			return nil, fmt.Errorf("publish %s (id %s): %w (last failure: %w)", msg.Subject, id, context.Cause(ctx), err)
		}
	}
}

// errCodeMsgIDInProcess is the answer of a replicated stream's leader to a
// publish whose id it is storing already ("duplicate message id is in
// process", JSStreamDuplicateMessageConflict in nats-server): a resend
// overtook the first send, whose PubAck is still to come.
const errCodeMsgIDInProcess jetstream.ErrorCode = 10158

// retryable reports whether a publish error may succeed when tried again with
// the same id. Errors the server gave an answer for (payload too large, no
// stream for the subject, wrong expectations, a full store) will not: a full
// store stays full for longer than a publish waits.
func retryable(err error) bool {
	switch {
	case errors.Is(err, nats.ErrMaxPayload),
		errors.Is(err, nats.ErrBadSubject),
		errors.Is(err, nats.ErrConnectionClosed):
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		if storeFull(apiErr) != "" {
			return false
		}
		return apiErr.ErrorCode == errCodeMsgIDInProcess || apiErr.Code >= 500 || apiErr.Code == 408 || apiErr.Code == 503
	}
	return true
}

// classify returns err as a *StoreFullError when the server refused the
// publish for want of space, else err itself.
func classify(err error) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	if limit := storeFull(apiErr); limit != "" {
		return &StoreFullError{Limit: limit, Reason: apiErr.Description, Err: err}
	}
	return err
}

// The server's answers to a publish that does not fit (nats-server's
// JSInsufficientResourcesErr, JSAccountResourcesExceededErr and
// JSStreamStoreFailedF).
const (
	errCodeInsufficientResources jetstream.ErrorCode = 10023
	errCodeAccountResources      jetstream.ErrorCode = 10002
	errCodeStreamStoreFailed     jetstream.ErrorCode = 10077
)

// storeFull says which limit a publish error hit: LimitServer, LimitAccount
// or LimitStream, or "" when the error is no full store. A stream's store
// failure is a full stream only for the limits of a stream that discards
// new messages; its other failures (an I/O error, a message too large)
// are not.
func storeFull(apiErr *jetstream.APIError) StoreLimit {
	switch apiErr.ErrorCode {
	case errCodeInsufficientResources:
		return LimitServer
	case errCodeAccountResources:
		return LimitAccount
	case errCodeStreamStoreFailed:
		switch apiErr.Description {
		case "maximum bytes exceeded", "maximum messages exceeded", "maximum messages per subject exceeded":
			return LimitStream
		}
	}
	return ""
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
