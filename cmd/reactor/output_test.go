package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func TestParseTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"2026-11-27T10:00:00Z", time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), false},
		{"2026-11-27T10:00:00.5+01:00", time.Date(2026, 11, 27, 9, 0, 0, 5e8, time.UTC), false},
		{"2h", now.Add(-2 * time.Hour), false},
		{"0s", now, false},
		{"-1h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"2026-11-27", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := parseTime("until", tt.in, now)
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestReport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		code int
		out  string
	}{
		{nil, exitOK, ""},
		{errors.New("boom"), exitFailure, "reactor: boom\n"},
		{errors.New("first\nsecond"), exitFailure, "reactor: first ; second\n"},
		{usageErrorf("bad"), exitUsage, "reactor: bad\n"},
		{partialError("2 of 3 failed"), exitPartial, "reactor: 2 of 3 failed\n"},
		{withHint(errors.New("no server"), "start one"), exitFailure, "reactor: no server: start one\n"},
		{cli.Exit("reactor bench: 3 alerts lost", 1), exitFailure, "reactor bench: 3 alerts lost\n"},
		{cli.Exit("", 0), exitOK, ""},
		{errors.Join(errors.New("x"), errContextCanceled()), exitInterrupted, "reactor: interrupted\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		if code := report(&b, tt.err); code != tt.code || b.String() != tt.out {
			t.Errorf("report(%v) = %d, %q; want %d, %q", tt.err, code, b.String(), tt.code, tt.out)
		}
	}
}

func errContextCanceled() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx.Err()
}

func TestHumanFormats(t *testing.T) {
	t.Parallel()
	checks := []struct{ got, want string }{
		{plural(1, "alert"), "1 alert"},
		{plural(0, "dead letter"), "0 dead letters"},
		{firstLine("one\ntwo", 80), "one …"},
		{firstLine("abcdef", 4), "abc…"},
		{firstLine("fits", 4), "fits"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestSuggestFlag(t *testing.T) {
	t.Parallel()
	flags := []cli.Flag{&cli.StringFlag{Name: "subject"}, &cli.StringFlag{Name: "severity"}, &cli.BoolFlag{Name: "json"}}
	for typed, want := range map[string]string{"subjet": "subject", "severty": "severity", "jsn": "json", "bogus": "", "s": ""} {
		if got := suggestFlag(flags, typed); got != want {
			t.Errorf("suggestFlag(%q) = %q, want %q", typed, got, want)
		}
	}
}

func TestJSONLogDurations(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: readableDuration}))
	log.Info("ready", "ack_wait", 30*time.Second, slog.Group("g", "d", 1500*time.Millisecond), "n", 3)
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	if got["ack_wait"] != "30s" || got["g"].(map[string]any)["d"] != "1.5s" || got["n"] != 3.0 {
		t.Errorf("log line %s: want ack_wait 30s, g.d 1.5s, n 3", buf.Bytes())
	}
}
