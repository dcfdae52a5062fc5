package processor

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/reactor-alerts/reactor/stream"
)

// Outcome is what the processor does with a message once its handler
// returned.
type Outcome int

const (
	// OutcomeAck acknowledges a handled message: the group is done with it.
	OutcomeAck Outcome = iota
	// OutcomeRetry naks the message with a delay: it is delivered again.
	OutcomeRetry
	// OutcomeDeadLetter stores the message in the DLQ stream with its reason,
	// then terminates it.
	OutcomeDeadLetter
	// OutcomeDrop acknowledges a message its handler chose to ignore.
	OutcomeDrop
	// OutcomeDefer naks the message with the delay its handler asked for
	// (Defer), without counting the delivery as a failure.
	OutcomeDefer
)

func (o Outcome) String() string {
	switch o {
	case OutcomeAck:
		return "ok"
	case OutcomeRetry:
		return "retried"
	case OutcomeDeadLetter:
		return "dead_lettered"
	case OutcomeDrop:
		return "dropped"
	case OutcomeDefer:
		return "deferred"
	}
	return "unknown"
}

// Decision is what the processor does with a message once its handler
// returned (see Config.Decide).
type Decision struct {
	Outcome Outcome
	// Delay is the wait before the next delivery, for OutcomeRetry and
	// OutcomeDefer.
	Delay time.Duration
	// Reason says why the message is dead-lettered, for
	// OutcomeDeadLetter: stream.ReasonPermanent, ReasonMaxDeliveries or
	// ReasonNoHandler.
	Reason string
}

// Decide maps a handler's result err on a message's delivered-th delivery
// to what a Processor of c does with the message: the decision Run applies,
// for tests of handlers (see package processortest) and tools. A plain
// error's retry delay holds random jitter: between half and all of the
// backoff.
func (c Config) Decide(err error, delivered int) Decision {
	c = c.withDefaults()
	return classify(err, delivered, c.MaxDeliver, backoff{base: c.BackoffBase, max: c.BackoffMax}, randJitter())
}

// backoff computes retry delays: base doubling per delivery, capped at max,
// with "equal jitter" (half fixed, half random) so retries of a burst of
// failures spread out.
type backoff struct {
	base, max time.Duration
}

// delay is the wait before delivery number delivered+1. jitter is in [0, 1).
func (b backoff) delay(delivered int, jitter float64) time.Duration {
	d := b.base
	for i := 1; i < delivered && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	return d/2 + time.Duration(jitter*float64(d/2))
}

// classify maps a handler's result to an outcome. It is pure: jitter is
// given, not drawn.
func classify(err error, delivered, maxDeliver int, b backoff, jitter float64) Decision {
	if err == nil {
		return Decision{Outcome: OutcomeAck}
	}
	if errors.Is(err, ErrDrop) {
		return Decision{Outcome: OutcomeDrop}
	}
	var deferred *DeferError
	if errors.As(err, &deferred) {
		return Decision{Outcome: OutcomeDefer, Delay: max(deferred.After, 0)}
	}
	if errors.Is(err, ErrNoHandler) {
		return Decision{Outcome: OutcomeDeadLetter, Reason: stream.ReasonNoHandler}
	}
	var perm *PermanentError
	if errors.As(err, &perm) {
		return Decision{Outcome: OutcomeDeadLetter, Reason: stream.ReasonPermanent}
	}
	if delivered >= maxDeliver {
		return Decision{Outcome: OutcomeDeadLetter, Reason: stream.ReasonMaxDeliveries}
	}
	var retry *RetryError
	if errors.As(err, &retry) {
		return Decision{Outcome: OutcomeRetry, Delay: max(retry.After, 0)}
	}
	return Decision{Outcome: OutcomeRetry, Delay: b.delay(delivered, jitter)}
}

func randJitter() float64 { return rand.Float64() }
