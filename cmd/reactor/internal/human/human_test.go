package human

import (
	"testing"
	"time"
)

func TestFormats(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct{ got, want string }{
		{Bytes(512), "512 B"},
		{Bytes(1536), "1.5 KiB"},
		{Bytes(3 << 30), "3.0 GiB"},
		{Ago(now, now.Add(-300*time.Millisecond)), "just now"},
		{Ago(now, now.Add(-5*time.Second)), "5s ago"},
		{Ago(now, now.Add(-90*time.Second)), "1m ago"},
		{Ago(now, now.Add(-185*time.Minute)), "3h5m ago"},
		{Ago(now, now.Add(-72*time.Hour)), "3d ago"},
		{Ago(now, time.Time{}), "-"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
