package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// logFlags configure the slog logger of run and replay.
func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error (debug logs every alert's outcome)", EnvVars: []string{"REACTOR_LOG_LEVEL"}, Category: catOutput},
		&cli.StringFlag{Name: "log-format", Value: "auto", Usage: "text, json, or auto: text on a terminal, json otherwise", EnvVars: []string{"REACTOR_LOG_FORMAT"}, Category: catOutput},
	}
}

// newLogger builds the logger of --log-level and --log-format, writing to w
// (stderr: stdout carries the alerts).
func newLogger(c *cli.Context, w io.Writer) (*slog.Logger, slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, 0, usageErrorf("invalid --log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	jsonOpts := &slog.HandlerOptions{Level: level, ReplaceAttr: readableDuration}
	switch format := c.String("log-format"); format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), level, nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, jsonOpts)), level, nil
	case "auto", "":
		if isTerminal(w) {
			return slog.New(slog.NewTextHandler(w, opts)), level, nil
		}
		return slog.New(slog.NewJSONHandler(w, jsonOpts)), level, nil
	default:
		return nil, 0, usageErrorf("invalid --log-format %q: want text, json or auto", format)
	}
}

// readableDuration writes durations in JSON logs as Go writes them
// ("ack_wait":"30s"), not as nanoseconds (slog's JSON default).
func readableDuration(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// writeJSONIndent writes v as indented JSON, for single objects.
func writeJSONIndent(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// humanTime formats t in the local zone, to the second; "-" if zero.
func humanTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// firstLine returns the first line of s, cut to max runes with "…".
func firstLine(s string, max int) string {
	s, _, more := strings.Cut(s, "\n")
	r := []rune(s)
	if len(r) > max {
		return string(r[:max-1]) + "…"
	}
	if more {
		return s + " …"
	}
	return s
}

// parseTime reads a point in time given as RFC 3339 ("2026-01-02T15:04:05Z")
// or as a duration before now ("2h").
func parseTime(flag, s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageErrorf("bad time %q for --%s: want RFC 3339 (2026-01-02T15:04:05Z) or a duration before now (90s, 2h)", s, flag)
}

// checkNoFlagArgs reports arguments that are flags of the command: urfave/cli
// stops parsing flags at the first argument, so `reactor dlq show 5 --json`
// would silently take --json as an argument.
func checkNoFlagArgs(c *cli.Context) error {
	for _, a := range c.Args().Slice() {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		for _, f := range c.Command.Flags {
			for _, n := range f.Names() {
				if n == name {
					return usageErrorf("flag %s after the arguments: put flags first, e.g. '%s %s ...'", a, c.Command.HelpName, a)
				}
			}
		}
	}
	return nil
}

// plural says "1 alert", "2 alerts".
func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
