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
	}
	return "unknown"
}

// decision is an outcome with its retry delay, or its dead-letter reason.
type decision struct {
	outcome Outcome
	delay   time.Duration
	reason  string // for OutcomeDeadLetter: a stream.Reason* constant
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
func classify(err error, delivered, maxDeliver int, b backoff, jitter float64) decision {
	if err == nil {
		return decision{outcome: OutcomeAck}
	}
	if errors.Is(err, ErrDrop) {
		return decision{outcome: OutcomeDrop}
	}
	if errors.Is(err, ErrNoHandler) {
		return decision{outcome: OutcomeDeadLetter, reason: stream.ReasonNoHandler}
	}
	var perm *PermanentError
	if errors.As(err, &perm) {
		return decision{outcome: OutcomeDeadLetter, reason: stream.ReasonPermanent}
	}
	if delivered >= maxDeliver {
		return decision{outcome: OutcomeDeadLetter, reason: stream.ReasonMaxDeliveries}
	}
	var retry *RetryError
	if errors.As(err, &retry) {
		return decision{outcome: OutcomeRetry, delay: max(retry.After, 0)}
	}
	return decision{outcome: OutcomeRetry, delay: b.delay(delivered, jitter)}
}

func randJitter() float64 { return rand.Float64() }
