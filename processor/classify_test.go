package processor

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func TestClassify(t *testing.T) {
	t.Parallel()
	b := backoff{base: time.Second, max: 10 * time.Second}
	plain := errors.New("boom")
	perm, maxDel, noHandler := stream.ReasonPermanent, stream.ReasonMaxDeliveries, stream.ReasonNoHandler
	tests := []struct {
		name       string
		err        error
		delivered  int
		maxDeliver int
		jitter     float64
		want       Decision
	}{
		{"success", nil, 1, 5, 0, Decision{Outcome: OutcomeAck}},
		{"success on last delivery", nil, 5, 5, 0, Decision{Outcome: OutcomeAck}},
		{"drop", ErrDrop, 1, 5, 0, Decision{Outcome: OutcomeDrop}},
		{"wrapped drop", fmt.Errorf("dup: %w", ErrDrop), 1, 5, 0, Decision{Outcome: OutcomeDrop}},
		{"plain first delivery, no jitter", plain, 1, 5, 0, Decision{Outcome: OutcomeRetry, Delay: 500 * time.Millisecond}},
		{"plain first delivery, max jitter", plain, 1, 5, 0.999, Decision{Outcome: OutcomeRetry, Delay: 500*time.Millisecond + 499500*time.Microsecond}},
		{"plain doubles", plain, 3, 5, 0, Decision{Outcome: OutcomeRetry, Delay: 2 * time.Second}},
		{"plain capped at max", plain, 4, 50, 0, Decision{Outcome: OutcomeRetry, Delay: 4 * time.Second}},
		{"plain far past the cap", plain, 40, 50, 0, Decision{Outcome: OutcomeRetry, Delay: 5 * time.Second}},
		{"plain on last delivery", plain, 5, 5, 0, Decision{Outcome: OutcomeDeadLetter, Reason: maxDel}},
		{"plain past last delivery", plain, 6, 5, 0, Decision{Outcome: OutcomeDeadLetter, Reason: maxDel}},
		{"retry after", Retry(42*time.Second, plain), 1, 5, 0.5, Decision{Outcome: OutcomeRetry, Delay: 42 * time.Second}},
		{"wrapped retry after", fmt.Errorf("x: %w", Retry(time.Second, nil)), 2, 5, 0, Decision{Outcome: OutcomeRetry, Delay: time.Second}},
		{"negative retry after", Retry(-time.Second, nil), 1, 5, 0, Decision{Outcome: OutcomeRetry, Delay: 0}},
		{"retry after on last delivery", Retry(time.Second, plain), 5, 5, 0, Decision{Outcome: OutcomeDeadLetter, Reason: maxDel}},
		{"permanent", Permanent(plain), 1, 5, 0, Decision{Outcome: OutcomeDeadLetter, Reason: perm}},
		{"wrapped permanent", fmt.Errorf("decode: %w", Permanent(plain)), 1, 5, 0, Decision{Outcome: OutcomeDeadLetter, Reason: perm}},
		{"no handler", Permanent(ErrNoHandler), 1, 5, 0, Decision{Outcome: OutcomeDeadLetter, Reason: noHandler}},
		{"panic", newPanicError("bug"), 1, 5, 0, Decision{Outcome: OutcomeRetry, Delay: 500 * time.Millisecond}},
		{"panic on last delivery", newPanicError("bug"), 5, 5, 0, Decision{Outcome: OutcomeDeadLetter, Reason: maxDel}},
		{"max deliver 1", plain, 1, 1, 0, Decision{Outcome: OutcomeDeadLetter, Reason: maxDel}},
		{"defer", Defer(3*time.Second, "rate"), 1, 5, 0, Decision{Outcome: OutcomeDefer, Delay: 3 * time.Second}},
		{"defer on last delivery", Defer(time.Second, ""), 5, 5, 0, Decision{Outcome: OutcomeDefer, Delay: time.Second}},
		{"defer past last delivery", fmt.Errorf("limit: %w", Defer(time.Second, "")), 9, 5, 0, Decision{Outcome: OutcomeDefer, Delay: time.Second}},
		{"negative defer", Defer(-time.Second, ""), 1, 5, 0, Decision{Outcome: OutcomeDefer, Delay: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := classify(tt.err, tt.delivered, tt.maxDeliver, b, tt.jitter)
			if got != tt.want {
				t.Errorf("classify(%v, delivered %d/%d) = %+v, want %+v", tt.err, tt.delivered, tt.maxDeliver, got, tt.want)
			}
		})
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	t.Parallel()
	b := backoff{base: 100 * time.Millisecond, max: time.Second}
	for delivered := 1; delivered < 10; delivered++ {
		lo, hi := b.delay(delivered, 0), b.delay(delivered, 0.999999)
		if lo <= 0 || hi < lo || hi > b.max {
			t.Errorf("delivered %d: delay range [%s, %s] outside (0, %s]", delivered, lo, hi, b.max)
		}
		if next := b.delay(delivered+1, 0); next < lo {
			t.Errorf("delivered %d: delay shrank from %s to %s", delivered, lo, next)
		}
	}
}

func TestClassifyReasonOnLastDelivery(t *testing.T) {
	t.Parallel()
	b := backoff{base: time.Second, max: 10 * time.Second}
	// A permanent error wins over the last delivery; no handler over both.
	if got := classify(Permanent(errors.New("bad")), 5, 5, b, 0); got.Reason != stream.ReasonPermanent {
		t.Errorf("permanent on the last delivery: reason %q, want %q", got.Reason, stream.ReasonPermanent)
	}
	if got := classify(Permanent(ErrNoHandler), 5, 5, b, 0); got.Reason != stream.ReasonNoHandler {
		t.Errorf("no handler on the last delivery: reason %q, want %q", got.Reason, stream.ReasonNoHandler)
	}
}
