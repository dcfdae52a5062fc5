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
	// MaxPending bounds the sends of one PublishBatch awaiting their
	// PubAck. Defaults to 4000.
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
	js   jetstream.JetStream
	cfg  PublisherConfig
	acks *ackRouter // PublishBatch's
}

// NewPublisher returns a Publisher on js. With its first publish it
// subscribes to its PubAcks on js's connection, as a nats.go JetStream
// context does for async publishes, and keeps the subscription for the
// connection's life: make one Publisher per connection and share it; it is
// safe for concurrent use.
func NewPublisher(js jetstream.JetStream, cfg PublisherConfig) *Publisher {
	return &Publisher{js: js, cfg: cfg.withDefaults(), acks: &ackRouter{nc: js.Conn()}}
}

// ErrNoMsgID is returned for a message without a Nats-Msg-Id header.
var ErrNoMsgID = errors.New("stream: message has no Nats-Msg-Id")

// Publish stores msg, which must carry a Nats-Msg-Id header, and waits for
// the PubAck. A send unanswered after ResendAfter is sent again while it
// still waits, and a failed one is retried after RetryWait (doubling, up to
// ResendAfter), all with the same id, until Attempts sends. A msg without a
// W3C traceparent header gets one (see EnsureTraceparent). msg must not be
// changed until Publish returns; nothing reads it after.
func (p *Publisher) Publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	id := msg.Header.Get(nats.MsgIdHdr)
	if id == "" {
		return nil, ErrNoMsgID
	}
	EnsureTraceparent(ctx, msg.Header)
	type send struct {
		token    uint64
		deadline time.Time // of its PubAck
		open     bool
	}
	var (
		results = make(chan ackResult, p.cfg.Attempts) // never blocks a send's answer
		sends   = make([]send, 0, p.cfg.Attempts)
		waiting int
		next    = time.Now() // the next send, zero once Attempts are sent
		wait    = p.cfg.RetryWait
		err     error // the most telling failure so far
	)
	defer func() {
		for _, s := range sends {
			if s.open {
				p.acks.forget(s.token)
			}
		}
	}()
	// failed takes a send's failure, and returns the error that ends the
	// publish, if it does.
	failed := func(ferr error) error {
		if err == nil || !errors.Is(ferr, context.DeadlineExceeded) {
			err = ferr // a timeout says less than what failed before it
		}
		if ctx.Err() == nil && !retryable(ferr) {
			return refused(msg, ferr)
		}
		if waiting > 0 {
			return nil
		}
		if next.IsZero() {
			return fmt.Errorf("publish %s (id %s): %d attempts: %w", msg.Subject, id, len(sends), err)
		}
		next = time.Now().Add(wait)
		wait = min(2*wait, p.cfg.ResendAfter)
		return nil
	}
	// sendNext sends msg again, unless Attempts are sent, when next is due,
	// and returns the error that ends the publish, if one does.
	sendNext := func(now time.Time) error {
		if next.IsZero() || now.Before(next) {
			return nil
		}
		slot := len(sends)
		sends = append(sends, send{})
		next = now.Add(p.cfg.ResendAfter)
		if len(sends) == p.cfg.Attempts {
			next = time.Time{}
		}
		token, serr := p.acks.send(msg, results, slot)
		if serr != nil {
			return failed(serr)
		}
		sends[slot] = send{token: token, deadline: now.Add(p.cfg.AttemptTimeout), open: true}
		waiting++
		return nil
	}
	if ferr := sendNext(next); ferr != nil {
		return nil, ferr
	}
	timer := time.NewTimer(p.cfg.ResendAfter)
	defer timer.Stop()
	for {
		select {
		case r := <-results:
			s := &sends[r.slot]
			if !s.open || s.token != r.token {
				continue
			}
			s.open = false
			waiting--
			if r.err == nil {
				return r.ack, nil
			}
			if ferr := failed(r.err); ferr != nil {
				return nil, ferr
			}
		case now := <-timer.C:
			for i := range sends {
				if s := &sends[i]; s.open && !now.Before(s.deadline) && p.acks.forget(s.token) {
					s.open = false
					waiting--
					if ferr := failed(context.DeadlineExceeded); ferr != nil {
						return nil, ferr
					}
				}
			}
			if ferr := sendNext(now); ferr != nil {
				return nil, ferr
			}
		case <-ctx.Done():
			if err == nil {
				return nil, fmt.Errorf("publish %s (id %s): %w", msg.Subject, id, context.Cause(ctx))
			}
			return nil, fmt.Errorf("publish %s (id %s): %w (last failure: %w)", msg.Subject, id, context.Cause(ctx), err)
		}
		// The timer goes off at the next send or the first PubAck
		// deadline, whichever comes first.
		at := next
		for _, s := range sends {
			if s.open && (at.IsZero() || s.deadline.Before(at)) {
				at = s.deadline
			}
		}
		if !at.IsZero() {
			timer.Reset(time.Until(at))
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

// refused is the error of a publish of msg that err, which retryable says
// sending again cannot help, ends: Publish's and PublishBatch's alike.
func refused(msg *nats.Msg, err error) error {
	return fmt.Errorf("publish %s (id %s): %w", msg.Subject, msg.Header.Get(nats.MsgIdHdr), classify(err))
}

// Result is the outcome of one message of a batch.
type Result struct {
	// Index of the message in the batch.
	Index int
	Ack   *jetstream.PubAck
	Err   error
}

// PublishBatch stores msgs, up to MaxPending in flight at once, and calls
// done once per message from the calling goroutine. A message whose PubAck
// does not come within AttemptTimeout, or that failed (the connection
// reconnecting, no stream leader, a server error), is published again with
// Publish and the same id: it may be stored already, and the id makes it
// count once. It returns the number of messages that failed.
//
// The first sends go out under a subscription of the Publisher's own on
// its connection, made by the first PublishBatch and kept for the
// connection's life.
func (p *Publisher) PublishBatch(ctx context.Context, msgs []*nats.Msg, done func(Result)) int {
	b := p.newBatch(ctx, min(p.cfg.MaxPending, max(len(msgs), 1)))
	defer b.close()
	failed := 0
	report := func(r Result) {
		if r.Err != nil {
			failed++
		}
		if done != nil {
			done(r)
		}
	}
	for i, msg := range msgs {
		if ctx.Err() != nil {
			report(Result{Index: i, Err: context.Cause(ctx)})
			continue
		}
		id := msg.Header.Get(nats.MsgIdHdr)
		if id == "" {
			report(Result{Index: i, Err: ErrNoMsgID})
			continue
		}
		EnsureTraceparent(ctx, msg.Header)
		if b.full() {
			report(b.finish(msgs))
		}
		if err := b.send(i, msg); err != nil {
			ack, err := p.Publish(ctx, msg)
			b.now = time.Now()
			report(Result{Index: i, Ack: ack, Err: err})
		}
	}
	for !b.empty() {
		report(b.finish(msgs))
	}
	return failed
}
