package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
)

func replayCommand() *cli.Command {
	env := func(name string) []string { return []string{"REACTOR_REPLAY_" + name} }
	flags := []cli.Flag{
		&cli.DurationFlag{Name: "since", Usage: "replay the alerts of this last period, e.g. 2h", EnvVars: env("SINCE")},
		&cli.Uint64Flag{Name: "from-seq", Usage: "replay from this history sequence", EnvVars: env("FROM_SEQ")},
		&cli.StringFlag{Name: "from-time", Usage: "replay from this time (RFC 3339, e.g. 2026-01-02T15:04:05Z)", EnvVars: env("FROM_TIME")},
		&cli.StringFlag{Name: "until", Usage: "stop at this time (RFC 3339, or a duration before now such as 30m); default: the last alert stored when replay starts", EnvVars: env("UNTIL")},
		&cli.StringSliceFlag{Name: "subject", Usage: "replay only alerts on these subjects (repeatable, wildcards * and >)", EnvVars: env("SUBJECTS")},
		&cli.BoolFlag{Name: "dry-run", Usage: "list the alerts instead of handling them", EnvVars: env("DRY_RUN")},
		&cli.StringFlag{Name: "config", Usage: "handlers config file, as for run; default: print every alert", EnvVars: []string{"REACTOR_CONFIG"}, TakesFile: true},
		&cli.StringFlag{Name: "group", Value: processor.GroupDefault, Usage: "the group the actions' runs are recorded under (reactor runs ls --group), marked as the replay's", EnvVars: []string{"REACTOR_GROUP"}},
		&cli.StringFlag{Name: "public-url", Usage: "the web console's URL as people reach it, as for run: Slack and PagerDuty messages link to the alert's page there; default: no links", EnvVars: []string{"REACTOR_PUBLIC_URL"}},
		jsonFlag("--dry-run: one JSON object per alert; otherwise: the summary as one JSON document, and the print actions' lines on stderr"),
	}
	return &cli.Command{
		Name:      "replay",
		Usage:     "run past alerts from the history through the handlers again",
		UsageText: "reactor replay (--since D | --from-seq N | --from-time T) [--until T] [--subject S]... [--dry-run] [options]",
		Description: `Reads the alert stream with a consumer of its own and hands each alert to the
handlers of --config, one at a time and in order. It never touches the
consumer groups: live processing goes on undisturbed, and a
replayed alert that fails is reported and counted, not retried or
dead-lettered. The replay ends at the last alert stored when it started, or at
--until. A progress bar shows on a terminal; a summary ends the run, and the
exit status is 3 if any alert failed.

Examples:
   reactor replay --since 2h --dry-run
   reactor replay --since 30m --subject 'alerts.db.>' --config reactor.yaml
   reactor replay --from-time 2026-01-02T15:00:00Z --until 2026-01-02T16:00:00Z
   reactor replay --from-seq 1200 --json`,
		Flags:  append(append(flags, logFlags()...), clientFlags()...),
		Action: replayAction,
	}
}

// replayRules builds the rules of --config (or the default: print every
// alert), printing to out, linking to --public-url. They are never
// started: they suppress nothing and share no group's limits (replaying is
// asking for the actions again); their runs are recorded under --group,
// marked as the replay's (see handlers.Rules.RecordReplay).
func replayRules(c *cli.Context, out, stderr io.Writer) (*handlers.Rules, error) {
	logger, _, err := newLogger(c, stderr)
	if err != nil {
		return nil, err
	}
	link, err := publicURL(c.String("public-url"))
	if err != nil {
		return nil, err
	}
	cfg, err := loadHandlersConfig(c)
	if err != nil {
		return nil, err
	}
	rules, err := handlers.NewRules(cfg, handlers.Deps{Out: out, Logger: logger, ConsoleURL: link})
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return rules, nil
}

// dryRunLine is one alert of replay --dry-run --json.
type dryRunLine struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Subject string    `json:"subject"`
	ID      string    `json:"id,omitempty"`
	Summary string    `json:"summary,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// replaySummary is the JSON summary of a replay.
type replaySummary struct {
	processor.ReplayStats
	DurationSeconds float64 `json:"duration_seconds"`
	DryRun          bool    `json:"dry_run"`
}

func replayAction(c *cli.Context) error {
	if err := checkNoFlagArgs(c); err != nil {
		return err
	}
	if c.Args().Present() {
		return usageErrorf("replay takes no arguments, got %q: see 'reactor replay --help'", c.Args().First())
	}
	cfg, err := replayConfig(c, time.Now())
	if err != nil {
		return err
	}
	stdout, stderr := c.App.Writer, c.App.ErrWriter
	asJSON, dryRun := c.Bool("json"), c.Bool("dry-run")
	var h processor.Handler
	var rules *handlers.Rules
	if dryRun {
		h = dryRunHandler(stdout, asJSON)
	} else {
		// With --json, stdout is the summary alone, one JSON document:
		// what the print actions print goes to stderr.
		printOut := stdout
		if asJSON {
			printOut = stderr
		}
		if rules, err = replayRules(c, printOut, stderr); err != nil {
			return err
		}
		h = rules
	}
	conn, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	if rules != nil {
		if err := rules.RecordReplay(c.Context, conn.JS, cfg.Topology, c.String("group")); err != nil {
			return err
		}
	}

	var bar *replayBar
	if isTerminal(stderr) {
		bar = newReplayBar(c.Context, stderr)
		cfg.OnStart = bar.start
	}
	cfg.OnResult = func(r processor.ReplayResult) {
		if bar != nil {
			bar.increment()
		}
		if r.Err != nil && !dryRun {
			m := r.Message
			fmt.Fprintf(stderr, "reactor: seq %d %s id=%s: %v\n", m.Sequence(), m.Subject(), m.ID(), r.Err)
		}
	}
	st, err := processor.Replay(c.Context, conn.JS, h, cfg)
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return err
	}
	switch {
	case asJSON && !dryRun:
		if err := writeJSON(stdout, replaySummary{ReplayStats: st, DurationSeconds: st.Duration.Seconds()}); err != nil {
			return err
		}
	case dryRun:
		fmt.Fprintf(stderr, "reactor: %s in the window (dry run: none handled)\n", plural(uint64(st.Replayed), "alert"))
	default:
		fmt.Fprintf(stderr, "reactor: replayed %s: %d ok, %d failed, in %s\n",
			plural(uint64(st.Replayed), "alert"), st.OK, st.Failed, st.Duration.Round(time.Millisecond))
	}
	if st.Failed > 0 && !dryRun {
		return partialError("%d of %d replayed alerts failed", st.Failed, st.Replayed)
	}
	return nil
}

// replayConfig reads the window from the flags.
func replayConfig(c *cli.Context, now time.Time) (processor.ReplayConfig, error) {
	cfg := processor.ReplayConfig{Topology: topology(c), FilterSubjects: c.StringSlice("subject")}
	given := 0
	for _, f := range []string{"since", "from-seq", "from-time"} {
		if c.IsSet(f) {
			given++
		}
	}
	if given != 1 {
		return cfg, usageErrorf("say where the replay starts with one of --since, --from-seq or --from-time: see 'reactor replay --help'")
	}
	switch {
	case c.IsSet("since"):
		d := c.Duration("since")
		if d <= 0 {
			return cfg, usageErrorf("--since must be positive, e.g. 2h")
		}
		cfg.StartTime = now.Add(-d)
	case c.IsSet("from-seq"):
		if cfg.StartSeq = c.Uint64("from-seq"); cfg.StartSeq == 0 {
			return cfg, usageErrorf("--from-seq starts at 1")
		}
	default:
		t, err := parseTime("from-time", c.String("from-time"), now)
		if err != nil {
			return cfg, err
		}
		cfg.StartTime = t
	}
	if c.IsSet("until") {
		t, err := parseTime("until", c.String("until"), now)
		if err != nil {
			return cfg, err
		}
		if !cfg.StartTime.IsZero() && t.Before(cfg.StartTime) {
			return cfg, usageErrorf("--until %s is before the start of the replay", c.String("until"))
		}
		cfg.Until = t
	}
	for _, s := range cfg.FilterSubjects {
		if _, err := processor.ParsePattern(s); err != nil {
			return cfg, usageErrorf("invalid --subject: %w", err)
		}
	}
	return cfg, nil
}

// dryRunHandler lists each alert instead of handling it.
func dryRunHandler(w io.Writer, asJSON bool) processor.Handler {
	return processor.HandlerFunc(func(_ context.Context, m *processor.Message) error {
		line := dryRunLine{Seq: m.Sequence(), Time: m.Timestamp().UTC(), Subject: m.Subject(), ID: m.ID()}
		if a, err := handlers.Decode(m); err != nil {
			line.Error = err.Error()
		} else {
			line.ID, line.Summary = a.ID, a.Summary
		}
		if asJSON {
			return writeJSON(w, line)
		}
		summary := line.Summary
		if line.Error != "" {
			summary = "(not an alert: " + line.Error + ")"
		}
		_, err := fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", line.Seq, humanTime(line.Time), line.Subject, orDash(line.ID), firstLine(summary, 100))
		return err
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// replayBar is the progress bar of a replay on a terminal.
type replayBar struct {
	p   *mpb.Progress
	bar *mpb.Bar
}

func newReplayBar(ctx context.Context, w io.Writer) *replayBar {
	return &replayBar{p: mpb.NewWithContext(ctx, mpb.WithOutput(w), mpb.WithWidth(40))}
}

func (b *replayBar) start(total uint64) {
	b.bar = b.p.AddBar(int64(total),
		mpb.PrependDecorators(decor.Name("replay "), decor.CountersNoUnit("%d / %d", decor.WCSyncWidth)),
		mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.Name(" "), decor.AverageSpeed(0, "%.0f/s")))
}

func (b *replayBar) increment() {
	if b.bar != nil {
		b.bar.Increment()
	}
}

// finish completes the bar (the window may hold fewer alerts than the total
// announced) and waits until it is drawn.
func (b *replayBar) finish() {
	if b.bar != nil {
		b.bar.SetTotal(-1, true)
	}
	b.p.Wait()
}
