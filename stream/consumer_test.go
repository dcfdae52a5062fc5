package stream

import (
	"testing"
	"time"
)

func TestParseStart(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want Start
		str  string
	}{
		{"", Start{Policy: StartAuto}, "auto"},
		{"auto", Start{Policy: StartAuto}, "auto"},
		{"all", Start{Policy: StartAll}, "all"},
		{"new", Start{Policy: StartNew}, "new"},
		{"24h", Start{Policy: StartTime, Time: now.Add(-24 * time.Hour)}, "2026-11-29T12:00:00Z"},
		{"2026-11-30T08:00:00+01:00", Start{Policy: StartTime, Time: time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC)}, "2026-11-30T07:00:00Z"},
		{"seq:42", Start{Policy: StartSeq, Seq: 42}, "seq:42"},
	}
	for _, tt := range tests {
		got, err := ParseStart(tt.in, now)
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("ParseStart(%q) = %+v (%q), %v; want %+v (%q)", tt.in, got, got.String(), err, tt.want, tt.str)
		}
	}
	for _, bad := range []string{"old", "-1h", "seq:", "seq:0", "seq:x", "yesterday"} {
		if _, err := ParseStart(bad, now); err == nil {
			t.Errorf("ParseStart(%q): no error", bad)
		}
	}
	if got := (Start{Policy: StartNew, Why: "auto: the stream has groups"}).String(); got != "new (auto: the stream has groups)" {
		t.Errorf("String with a reason = %q", got)
	}
}
