package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
)

func runsCommand() *cli.Command {
	groupFlag := func(usage string) cli.Flag {
		return &cli.StringFlag{Name: "group", Usage: usage, EnvVars: []string{"REACTOR_GROUP"}}
	}
	return &cli.Command{
		Name:  "runs",
		Usage: "what the actions did: list, show or re-run the records of their runs",
		UsageText: `reactor runs ls [--group G] [--entry E] [--alert SEQ|ID] [--failed] [--since T] [--limit N] [--json]
reactor runs show [--json] ID
reactor runs rerun [--group G] ALERT_SEQ`,
		Description: `Every run of an action of a rule entry (every action but print) leaves a
record, written before its alert is acknowledged: the entry and the action, the
alert, the attempt, when and how long, the outcome (ok, failed, permanent,
timeout, canceled), the exit code or HTTP status, the end of what the command
printed or the answer's body, and the command line or URL as run (secrets
redacted). An entry that suppresses a repeat records that too (suppressed).
The records stay in the stream ` + handlers.RunsStream + ` for the alert stream's max age,
the oldest going first past its size limit.`,
		Subcommands: []*cli.Command{
			{
				Name:      "ls",
				Usage:     "list runs, newest first",
				UsageText: "reactor runs ls [--group G] [--entry E] [--alert SEQ|ID] [--failed] [--since T] [--limit N] [--json] [options]",
				Description: `Examples:
   reactor runs ls
   reactor runs ls --alert 42             # every run for alert 42 of the alert stream
   reactor runs ls --failed --since 2h --group pager
   reactor runs ls --json | jq -r '.runs[] | .id + " " + .outcome'`,
				Flags: append([]cli.Flag{
					groupFlag("only the runs of this group"),
					&cli.StringFlag{Name: "entry", Usage: "only the runs of this rule entry", EnvVars: []string{"REACTOR_RUNS_ENTRY"}},
					&cli.StringFlag{Name: "alert", Usage: "only the runs for this alert: its sequence in the alert stream, or its id", EnvVars: []string{"REACTOR_RUNS_ALERT"}},
					&cli.BoolFlag{Name: "failed", Usage: "only the runs that did not succeed (failed, permanent, timeout, canceled)", EnvVars: []string{"REACTOR_RUNS_FAILED"}},
					&cli.StringFlag{Name: "since", Usage: "only the runs recorded since then: a duration before now (2h) or an RFC 3339 time", EnvVars: []string{"REACTOR_RUNS_SINCE"}},
					&cli.IntFlag{Name: "limit", Value: handlers.RunsLimitDefault, Usage: "list the newest this many", EnvVars: []string{"REACTOR_RUNS_LIMIT"}},
					jsonFlag("print one JSON document: {\"runs\": [...], \"older\": SEQ}"),
				}, clientFlags()...),
				Action: runsList,
			},
			{
				Name:      "show",
				Usage:     "show one run: everything, its output included",
				UsageText: "reactor runs show [--json] ID",
				Description: `Examples:
   reactor runs show 01M9A3F2Q5Z8K4J7H6G5F4D3S2
   reactor runs show --json 01M9A3F2Q5Z8K4J7H6G5F4D3S2 | jq -r .stdout.text`,
				Flags:  append([]cli.Flag{jsonFlag("print it as one JSON object")}, clientFlags()...),
				Action: runsShow,
			},
			{
				Name:      "rerun",
				Usage:     "run a group's current rules for an alert again, durably",
				UsageText: "reactor runs rerun [--group G] ALERT_SEQ",
				Description: `Puts a copy of the alert at ALERT_SEQ of the alert stream back into processing
for one group, as a redrive does: on the group's redrive subject, with a new
message id and the header ` + handlers.HeaderRerunOf + `: ALERT_SEQ. The group's
processes handle it with their rules as they are now, retry it and dead-letter
it like any alert, whatever crashes meanwhile, and never suppress it; its runs
are recorded under the original alert (rerun: true), so 'reactor runs ls
--alert ALERT_SEQ' shows the old runs and the new.

Examples:
   reactor runs rerun 42
   reactor runs rerun --group pager 42`,
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "group", Value: processor.GroupDefault, Usage: "the group whose rules run again", EnvVars: []string{"REACTOR_GROUP"}},
					jsonFlag("print the result as JSON"),
				}, clientFlags()...),
				Action: runsRerun,
			},
		},
	}
}

func runsList(c *cli.Context) error {
	if err := checkNoFlagArgs(c); err != nil {
		return err
	}
	if c.Args().Present() {
		return usageErrorf("runs ls takes no arguments: filter with --group, --entry, --alert, --failed, --since")
	}
	q := handlers.RunQuery{Group: c.String("group"), Entry: c.String("entry"), Failed: c.Bool("failed"), Limit: c.Int("limit")}
	if q.Limit < 1 {
		return usageErrorf("--limit %d: want at least 1", q.Limit)
	}
	if a := c.String("alert"); a != "" {
		if seq, err := strconv.ParseUint(a, 10, 64); err == nil && seq > 0 {
			q.AlertSeq = seq
		} else {
			q.AlertID = a
		}
	}
	if s := c.String("since"); s != "" {
		t, err := parseTime("since", s, time.Now())
		if err != nil {
			return err
		}
		q.Since = t
	}
	conn, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	page, err := handlers.ListRuns(c.Context, conn.JS, q)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSONIndent(c.App.Writer, page)
	}
	return writeRuns(c.App.Writer, page, q)
}

func writeRuns(w io.Writer, page handlers.RunPage, q handlers.RunQuery) error {
	if len(page.Runs) == 0 {
		fmt.Fprintln(w, "no runs")
		if page.Limited {
			fmt.Fprintf(w, "(read the newest %d records: older ones may match; --since or --alert narrows the read)\n", handlers.RunsBudgetDefault)
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTED\tGROUP\tENTRY\tACTION\tALERT\tTRY\tOUTCOME\tRESULT\tTOOK\tERROR")
	for _, r := range page.Runs {
		action := r.Action
		if action == "" {
			action = "-"
		}
		alert := strconv.FormatUint(r.AlertSeq, 10)
		switch {
		case r.Rerun:
			alert += " (rerun)"
		case r.Replay:
			alert += " (replay)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.ID, humanTime(r.Started), r.Group, r.Entry, action, alert,
			r.Delivered, r.Outcome, orDash(r.Result()), time.Duration(r.DurationSeconds*float64(time.Second)).Round(time.Millisecond), firstLine(r.Error, 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case page.Limited:
		fmt.Fprintf(w, "(stopped after reading %d records: older ones may match; --since or --alert narrows the read)\n", handlers.RunsBudgetDefault)
	case page.Older > 0:
		fmt.Fprintf(w, "(the newest %d: --limit shows more)\n", len(page.Runs))
	}
	return nil
}

func runsShow(c *cli.Context) error {
	if err := checkNoFlagArgs(c); err != nil {
		return err
	}
	if c.NArg() != 1 {
		return usageErrorf("runs show takes one run id: reactor runs show ID (reactor runs ls lists them)")
	}
	conn, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	r, err := handlers.GetRun(c.Context, conn.JS, c.Args().First())
	if errors.Is(err, handlers.ErrRunNotFound) {
		return withHint(err, "reactor runs ls lists the runs recorded")
	}
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSONIndent(c.App.Writer, r)
	}
	return writeRun(c.App.Writer, r)
}

func writeRun(w io.Writer, r handlers.Run) error {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Run", r.ID)
	row("Outcome", r.Outcome)
	row("Group", r.Group)
	row("Entry", r.Entry)
	if r.Action != "" {
		row("Action", fmt.Sprintf("%s (action %d of the entry)", r.Action, r.ActionIndex+1))
	}
	alert := fmt.Sprintf("%s seq %d, %s", r.AlertStream, r.AlertSeq, r.Subject)
	if r.AlertID != "" {
		alert += ", id " + r.AlertID
	}
	row("Alert", alert)
	if r.Rerun {
		row("Re-run", fmt.Sprintf("yes: asked for by reactor runs rerun (copy at seq %d)", r.RerunSeq))
	}
	if r.Replay {
		row("Replay", "yes: run by reactor replay, outside the group's consumer")
	}
	row("Attempt", strconv.Itoa(r.Delivered))
	row("Started", humanTime(r.Started))
	row("Took", time.Duration(r.DurationSeconds*float64(time.Second)).String())
	if len(r.Command) > 0 {
		row("Command", strings.Join(quoteArgs(r.Command), " "))
	}
	row("URL", r.URL)
	row("Result", r.Result())
	row("Process", fmt.Sprintf("pid %d on %s", r.PID, r.Host))
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Error != "" {
		fmt.Fprintln(w, "\nError:")
		for line := range strings.SplitSeq(r.Error, "\n") {
			fmt.Fprintln(w, "  "+line)
		}
	}
	for _, o := range []struct {
		name string
		out  *handlers.Output
	}{{"Stdout", r.Stdout}, {"Stderr", r.Stderr}, {"Body", r.Body}} {
		if o.out == nil {
			continue
		}
		head := fmt.Sprintf("\n%s (%s):", o.name, plural(uint64(o.out.Bytes), "byte"))
		if o.out.Truncated {
			head = fmt.Sprintf("\n%s (the last %d of %s):", o.name, len(o.out.Text), plural(uint64(o.out.Bytes), "byte"))
		}
		fmt.Fprintln(w, head)
		for line := range strings.SplitSeq(strings.TrimSuffix(o.out.Text, "\n"), "\n") {
			fmt.Fprintln(w, "  "+line)
		}
	}
	return nil
}

// quoteArgs quotes the arguments that a shell would split or expand.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return out
}

func runsRerun(c *cli.Context) error {
	if err := checkNoFlagArgs(c); err != nil {
		return err
	}
	if c.NArg() != 1 {
		return usageErrorf("runs rerun takes one alert sequence: reactor runs rerun [--group G] ALERT_SEQ")
	}
	seq, err := strconv.ParseUint(c.Args().First(), 10, 64)
	if err != nil || seq == 0 {
		return usageErrorf("bad alert sequence %q: want its sequence in the alert stream (reactor runs ls and the console show it)", c.Args().First())
	}
	conn, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := handlers.Rerun(c.Context, conn.JS, topology(c), c.String("group"), seq)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, res)
	}
	fmt.Fprintf(c.App.Writer, "re-running alert %d (%s) for group %s: stored as seq %d; reactor runs ls --alert %d shows its runs\n",
		res.AlertSeq, res.Subject, res.Group, res.Seq, res.AlertSeq)
	return nil
}
