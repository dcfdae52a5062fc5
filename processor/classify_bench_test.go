package processor

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func BenchmarkClassify(b *testing.B) {
	bo := backoff{base: time.Second, max: 5 * time.Minute}
	plain := errors.New("boom")
	cases := []struct {
		name      string
		err       error
		delivered int
	}{
		{"success", nil, 1},
		{"plain", plain, 2},
		{"wrapped_plain", fmt.Errorf("webhook: %w", plain), 2},
		{"retry_after", Retry(time.Second, plain), 1},
		{"permanent", fmt.Errorf("decode: %w", Permanent(plain)), 1},
		{"drop", ErrDrop, 1},
		{"last_delivery", plain, 5},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = classify(c.err, c.delivered, 5, bo, 0.5)
			}
		})
	}
}

func TestClassifySuccessDoesNotAllocate(t *testing.T) {
	bo := backoff{base: time.Second, max: 5 * time.Minute}
	if n := testing.AllocsPerRun(1000, func() { _ = classify(nil, 1, 5, bo, 0.5) }); n != 0 {
		t.Errorf("classify(nil) allocates %.1f times per call, want 0", n)
	}
}
