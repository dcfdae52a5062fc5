package processor

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// errAckConfirmed ends the first ack's wait when a resend was confirmed.
var errAckConfirmed = errors.New("processor: ack confirmed by a resend")

// doubleAck acks msg and waits, up to stream.RequestTimeoutDefault, for the
// server to confirm it. A consumer leader that steps down or dies drops the
// acks it has not confirmed, and nothing tells the client; the new leader
// confirms only what is sent to it. So an ack unconfirmed after
// stream.ResendAfterDefault is sent again, once per that interval, while
// the first still waits (an ack is idempotent), and an ack refused for want
// of a leader (no responders) is retried the same way. The first send runs
// in the caller's goroutine: a confirmed ack costs no more than
// msg.DoubleAck.
func doubleAck(ctx context.Context, msg jetstream.Msg) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stream.RequestTimeoutDefault)
	defer cancel() // ends the resends
	first, confirmed := context.WithCancelCause(ctx)
	defer confirmed(nil)
	resends := time.AfterFunc(stream.ResendAfterDefault, func() { resendAck(ctx, msg, confirmed) })
	defer resends.Stop()
	err := msg.DoubleAck(first)
	switch {
	case err == nil, errors.Is(err, jetstream.ErrMsgAlreadyAckd): // already: by a resend
		return nil
	case errors.Is(context.Cause(first), errAckConfirmed):
		return nil
	case errors.Is(err, jetstream.ErrMsgNotBound), errors.Is(err, jetstream.ErrMsgNoReply),
		errors.Is(err, nats.ErrConnectionClosed):
		return err
	}
	<-first.Done() // a resend is confirmed, or time is up
	if errors.Is(context.Cause(first), errAckConfirmed) {
		return nil
	}
	return err
}

// resendAck sends msg's ack again until the server confirms one (then it
// calls confirmed) or ctx is done, no more often than once per
// stream.ResendAfterDefault.
func resendAck(ctx context.Context, msg jetstream.Msg, confirmed context.CancelCauseFunc) {
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, stream.ResendAfterDefault)
		err := msg.DoubleAck(rctx)
		if err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			cancel()
			confirmed(errAckConfirmed)
			return
		}
		<-rctx.Done()
		cancel()
	}
}
