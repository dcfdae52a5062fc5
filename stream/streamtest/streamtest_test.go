package streamtest_test

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as testing's does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// eventually runs streamtest.Eventually on a fatalRecorder and returns its
// failure message, "" if it succeeded.
func eventually[C func() error | func() bool](timeout time.Duration, cond C, msgAndArgs ...any) string {
	r := &fatalRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		streamtest.Eventually(r, timeout, cond, msgAndArgs...)
	}()
	<-done
	return r.msg
}

func TestEventually(t *testing.T) {
	t.Parallel()
	calls := 0
	if msg := eventually(10*time.Second, func() error {
		if calls++; calls < 3 {
			return fmt.Errorf("%d of 3 acked", calls)
		}
		return nil
	}); msg != "" || calls != 3 {
		t.Errorf("a condition met on the third call: %d calls, failure %q", calls, msg)
	}

	calls = 0
	msg := eventually(50*time.Millisecond, func() error {
		calls++
		return fmt.Errorf("%d of 3 acked", min(calls, 2))
	}, "alert %d", 3)
	if want := "streamtest: timed out after 50ms waiting for alert 3: 2 of 3 acked"; msg != want {
		t.Errorf("failure = %q, want %q (the last error)", msg, want)
	}

	msg = eventually(20*time.Millisecond, func() error { return errors.New("no leader") })
	if want := "streamtest: timed out after 20ms: no leader"; msg != want {
		t.Errorf("failure = %q, want %q", msg, want)
	}

	msg = eventually(20*time.Millisecond, func() bool { return false }, "the dead letter")
	if want := "streamtest: timed out after 20ms waiting for the dead letter: condition still false"; msg != want {
		t.Errorf("failure = %q, want %q", msg, want)
	}
}
