package processortest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/processor/processortest"
	"github.com/reactor-alerts/reactor/stream"
)

// TestProcess: each result of a handler becomes the outcome the processor
// would apply, without a server.
func TestProcess(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	r := processor.NewRouter()
	handlers.On(r, "ok", func(context.Context, stream.Alert) error { return nil })
	handlers.On(r, "retry", func(context.Context, stream.Alert) error { return processor.Retry(time.Minute, boom) })
	handlers.On(r, "bad", func(context.Context, stream.Alert) error { return processor.Permanent(boom) })
	handlers.On(r, "drop", func(context.Context, stream.Alert) error { return processor.ErrDrop })
	handlers.On(r, "flaky", func(context.Context, stream.Alert) error { return boom })
	handlers.On(r, "panics", func(context.Context, stream.Alert) error { panic("bug") })
	cfg := processor.Config{MaxDeliver: 3, BackoffBase: time.Second, BackoffMax: time.Minute}
	tests := []struct {
		name      string
		delivered int
		outcome   processor.Outcome
		reason    string
	}{
		{"ok", 1, processor.OutcomeAck, ""},
		{"retry", 1, processor.OutcomeRetry, ""},
		{"bad", 1, processor.OutcomeDeadLetter, stream.ReasonPermanent},
		{"drop", 1, processor.OutcomeDrop, ""},
		{"flaky", 1, processor.OutcomeRetry, ""},
		{"flaky", 3, processor.OutcomeDeadLetter, stream.ReasonMaxDeliveries},
		{"panics", 1, processor.OutcomeRetry, ""},
		{"nobody", 1, processor.OutcomeDeadLetter, stream.ReasonNoHandler},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.name, tt.delivered), func(t *testing.T) {
			t.Parallel()
			res := processortest.Process(context.Background(), r, processortest.AlertMessage(stream.NewAlert(tt.name, "s"), tt.delivered), cfg)
			if res.Outcome != tt.outcome || res.Reason != tt.reason {
				t.Errorf("outcome %s %q (err %v), want %s %q", res.Outcome, res.Reason, res.Err, tt.outcome, tt.reason)
			}
			if want := "alerts." + tt.name; tt.name != "nobody" && res.Entry != want {
				t.Errorf("entry %q, want %q", res.Entry, want)
			}
		})
	}
	res := processortest.Process(context.Background(), r, processortest.AlertMessage(stream.NewAlert("retry", "s"), 1), cfg)
	if res.Delay != time.Minute {
		t.Errorf("Retry(1m) delay %s", res.Delay)
	}
	res = processortest.Process(context.Background(), r, processortest.AlertMessage(stream.NewAlert("flaky", "s"), 2), cfg)
	if res.Delay < time.Second || res.Delay > 2*time.Second {
		t.Errorf("second delivery's backoff %s, want between 1s and 2s (2s with jitter)", res.Delay)
	}
	var pe *processor.PanicError
	res = processortest.Process(context.Background(), r, processortest.AlertMessage(stream.NewAlert("panics", "s"), 1), cfg)
	if !errors.As(res.Err, &pe) || len(pe.Stack) == 0 {
		t.Errorf("panic: %v, want a *PanicError with its stack", res.Err)
	}
}

// ExampleProcess tests a handler without a server.
func ExampleProcess() {
	r := processor.NewRouter()
	handlers.On(r, "disk_full", func(_ context.Context, a stream.Alert) error {
		if a.Labels["host"] == "" {
			return processor.Permanent(errors.New("no host label: nobody to page"))
		}
		return nil
	})
	a := stream.NewAlert("disk_full", "disk 95%")
	res := processortest.Process(context.Background(), r, processortest.AlertMessage(a, 1), processor.Config{})
	fmt.Println(res.Entry, res.Outcome, res.Reason, res.Err)

	a.Labels = map[string]string{"host": "db-3"}
	res = processortest.Process(context.Background(), r, processortest.AlertMessage(a, 1), processor.Config{})
	fmt.Println(res.Entry, res.Outcome)
	// Output:
	// alerts.disk_full dead_lettered permanent permanent: no host label: nobody to page
	// alerts.disk_full ok
}
