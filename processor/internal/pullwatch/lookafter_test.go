package pullwatch

import (
	"testing"
	"time"
)

func TestPullWatchLookAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pending uint64
		looks   int
		want    time.Duration
	}{
		{pending: 3, looks: 0, want: 20 * time.Millisecond}, // left messages behind: suspect at once
		{pending: 3, looks: 1, want: 100 * time.Millisecond},
		{pending: 3, looks: 2, want: 200 * time.Millisecond},
		{pending: 0, looks: 0, want: 100 * time.Millisecond}, // drained: idle is normal
		{pending: 0, looks: 1, want: 200 * time.Millisecond},
		{pending: 0, looks: 5, want: 3200 * time.Millisecond}, // past pullIdleLimit: parked
	}
	for _, tt := range tests {
		var w Watch
		w.pending.Store(tt.pending)
		if got := w.lookAfter(tt.looks); got != tt.want {
			t.Errorf("pending %d, looks %d: lookAfter = %v, want %v", tt.pending, tt.looks, got, tt.want)
		}
	}
}
