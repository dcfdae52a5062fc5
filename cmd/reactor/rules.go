package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

func rulesCommand() *cli.Command {
	return &cli.Command{
		Name:      "rules",
		Usage:     "see what the handlers config does with an alert",
		UsageText: "reactor rules explain [options] FILE|-",
		Subcommands: []*cli.Command{
			rulesExplainCommand(),
		},
	}
}

func rulesExplainCommand() *cli.Command {
	env := func(name string) []string { return []string{"REACTOR_" + name} }
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "handlers config file (YAML); default: print every alert", EnvVars: env("CONFIG"), Category: catProc, TakesFile: true},
		&cli.StringFlag{Name: "group", Value: processor.GroupDefault, Usage: "consumer group whose suppression windows to read", EnvVars: env("GROUP"), Category: catProc},
		&cli.Uint64Flag{Name: "seq", Usage: "explain the alert stored at this sequence of the alert stream instead of a file", EnvVars: env("EXPLAIN_SEQ"), Category: catProc},
		&cli.StringFlag{Name: "subject", Usage: `subject of an alert that has neither "subject" nor "name", e.g. alerts.disk_full`, EnvVars: env("EXPLAIN_SUBJECT"), Category: catProc},
		jsonFlag("print the explanation as one JSON object (snake_case keys)"),
	}
	return &cli.Command{
		Name:      "explain",
		Usage:     "show which entry takes an alert, which conditions hold, and what would run",
		UsageText: "reactor rules explain [options] FILE|-\nreactor rules explain [options] --seq N",
		Description: `Reads one alert (JSON or text) from FILE, from stdin with -, or from the
alert stream with --seq, and evaluates the handler entries of --config on it
as reactor run would: the entries whose pattern matches, in evaluation order,
each condition with the alert's value, the entry that takes it, the actions
that would run (commands and requests rendered for the alert), whether the
alert falls in an open suppression window of --group now, and for a limit of
runs at once its key and which runs hold its slots now. Rates are kept by
each reactor run process: explain shows them, and how often the group's
processes made alerts wait. Nothing runs and nothing changes. The windows are read from the server at --url; without one, explain
says what it could not read.

Examples:
   reactor rules explain --config reactor.yaml alert.json
   echo '{"subject":"alerts.disk.db-3","severity":"critical","labels":{"team":"db"}}' | reactor rules explain --config reactor.yaml -
   reactor rules explain --config reactor.yaml --seq 1042 --json`,
		Flags:  append(flags, clientFlags()...),
		Action: rulesExplainAction,
	}
}

// explainOutput is explain's JSON.
type explainOutput struct {
	Alert stream.Alert `json:"alert"`
	handlers.Explanation
	// Limited is how often the group's processes made alerts of the entry
	// wait, if known.
	Limited *uint64 `json:"limited,omitempty"`
	// Unknown says what could not be read from the server.
	Unknown string `json:"unknown,omitempty"`
}

func rulesExplainAction(c *cli.Context) error {
	if err := checkNoFlagArgs(c); err != nil {
		return err
	}
	seq := c.Uint64("seq")
	switch {
	case seq == 0 && c.NArg() != 1:
		return usageErrorf("explain takes one alert: a FILE, - for stdin, or --seq N")
	case seq != 0 && c.NArg() > 0:
		return usageErrorf("give a FILE or --seq, not both")
	}
	cfg, err := loadHandlersConfig(c)
	if err != nil {
		return err
	}
	var data []byte
	var subject string
	var header nats.Header
	out := explainOutput{}
	if seq == 0 {
		if data, err = readAlertArg(c); err != nil {
			return err
		}
		if subject, err = alertSubject(data, c.String("subject")); err != nil {
			return err
		}
	}
	// The server holds the windows and the counts: explain does without
	// them if it cannot reach one, unless the alert itself is stored there.
	conn, cerr := connect(c)
	if cerr != nil && seq != 0 {
		return cerr
	}
	group, topo := c.String("group"), topology(c)
	if cerr == nil {
		defer conn.Close()
	} else {
		out.Unknown = "suppression windows, concurrency slots and counts: " + firstLine(cerr.Error(), 200)
	}
	if seq != 0 {
		if subject, data, header, err = storedAlert(c.Context, conn.JS, topo.Alerts, seq); err != nil {
			return err
		}
	}
	a, err := stream.DecodeAlert(subject, data)
	if err != nil {
		return withHint(err, "an alert is a JSON object with reactor's fields, or text")
	}
	if a.ID == "" {
		a.ID = header.Get(nats.MsgIdHdr)
	}
	rules, err := handlers.NewRules(cfg, handlers.Deps{Out: io.Discard})
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	if cerr == nil {
		// Bound to the group, the rules read its suppression windows.
		stop, err := rules.Start(c.Context, processor.Group{Name: group, Topology: topo.WithDefaults(), JetStream: conn.JS})
		if err != nil {
			return err
		}
		defer stop()
	}
	ex, err := rules.Explain(c.Context, a)
	if err != nil {
		return err
	}
	out.Alert, out.Explanation = a, ex
	if cerr == nil && ex.Limit != "" {
		counts, err := handlers.ReadCounts(c.Context, conn.JS)
		if err != nil {
			return err
		}
		var n uint64
		for _, e := range counts {
			if e.Group == group && e.Entry == ex.Entry {
				n = e.Limited
			}
		}
		out.Limited = &n
	}
	if c.Bool("json") {
		return writeJSONIndent(c.App.Writer, out)
	}
	return writeExplanation(c.App.Writer, out, group)
}

// readAlertArg reads the file named by the argument, or stdin for "-".
func readAlertArg(c *cli.Context) ([]byte, error) {
	name := c.Args().First()
	if name == "-" {
		return io.ReadAll(c.App.Reader)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, withHint(fmt.Errorf("read alert: %w", err), "give a file holding one alert, or - for stdin")
	}
	return data, nil
}

// alertSubject is the subject of the alert in data: its "subject", or
// "alerts." + its "name", or the flag's.
func alertSubject(data []byte, flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	var probe struct {
		Subject string `json:"subject"`
		Name    string `json:"name"`
	}
	_ = json.Unmarshal(data, &probe) // not JSON: a text alert, which needs --subject
	switch {
	case probe.Subject != "":
		return probe.Subject, nil
	case probe.Name != "":
		return stream.SubjectPrefix + strings.TrimPrefix(probe.Name, stream.SubjectPrefix), nil
	}
	return "", usageErrorf(`the alert has neither "subject" nor "name": give --subject, e.g. --subject alerts.disk_full`)
}

// storedAlert reads the alert at seq of the alert stream.
func storedAlert(ctx context.Context, js jetstream.JetStream, name string, seq uint64) (string, []byte, nats.Header, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return "", nil, nil, fmt.Errorf("read stream %q: %w", name, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		st := s.CachedInfo().State
		kept := fmt.Sprintf("first %d, last %d", st.FirstSeq, st.LastSeq)
		if st.Msgs == 0 {
			kept = "it is empty"
		}
		return "", nil, nil, withHint(fmt.Errorf("no alert %d in %s (%s)", seq, name, kept), "see `reactor status`")
	}
	if err != nil {
		return "", nil, nil, fmt.Errorf("read alert %d of %s: %w", seq, name, err)
	}
	return m.Subject, m.Data, m.Header, nil
}

func writeExplanation(w io.Writer, out explainOutput, group string) error {
	a, ex := out.Alert, out.Explanation
	status := a.Status
	if status == "" {
		status = stream.StatusFiring
	}
	var labels []string
	for k, v := range a.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	fmt.Fprintf(w, "Alert    %s, severity %s, status %s", a.Subject, a.Severity, status)
	if len(labels) > 0 {
		fmt.Fprintf(w, ", labels %s", strings.Join(labels, " "))
	}
	fmt.Fprintln(w)
	if len(ex.Candidates) == 0 {
		fmt.Fprintln(w, "Entries  none has a pattern matching the subject")
	} else {
		fmt.Fprintln(w, "Entries  whose pattern matches, in evaluation order:")
	}
	for _, cand := range ex.Candidates {
		verdict := "does not take it"
		if cand.Takes {
			verdict = "TAKES IT"
		}
		where := cand.Where
		if cand.Entry != cand.Pattern {
			where = "on " + cand.Pattern + ", " + where
		}
		fmt.Fprintf(w, "  %s (%s): %s\n", cand.Entry, where, verdict)
		if len(cand.Checks) == 0 {
			fmt.Fprintln(w, "    no conditions")
		}
		for _, ch := range cand.Checks {
			mark := "ok  "
			if !ch.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(w, "    %s %s: got %s\n", mark, ch.Condition, ch.Got)
		}
	}
	for _, e := range ex.EndsWindows {
		fmt.Fprintf(w, "Resolved ends the suppression window of entry %s\n", e)
	}
	switch ex.Outcome {
	case handlers.OutcomeNoHandler:
		fmt.Fprintln(w, "Outcome  no entry takes it: dead-lettered with reason no_handler")
	case handlers.OutcomeFiltered:
		fmt.Fprintf(w, "Outcome  filtered by %s (no action): acknowledged, counted, not dead-lettered\n", ex.Entry)
	case handlers.OutcomeSuppressed:
		fmt.Fprintf(w, "Outcome  suppressed now by %s: acknowledged without running %s\n", ex.Entry, strings.Join(ex.Actions, ", then "))
	default:
		fmt.Fprintf(w, "Outcome  %s runs %s\n", ex.Entry, strings.Join(ex.Actions, ", then "))
	}
	if s := ex.Suppress; s != nil {
		fmt.Fprintf(w, "Suppress key %q, window %s (group %s): ", s.Key, s.For, group)
		switch {
		case !s.Known:
			fmt.Fprintln(w, "state unknown")
		case s.Open:
			fmt.Fprintf(w, "open, opened by %s, ends by %s\n", s.Holder, humanTime(s.Until))
		default:
			fmt.Fprintln(w, "none open: this alert would open one")
		}
	}
	if ex.Limit != "" {
		fmt.Fprintf(w, "Limit    %s", ex.Limit)
		if out.Limited != nil {
			fmt.Fprintf(w, "; alerts made to wait so far in group %s: %d", group, *out.Limited)
		}
		fmt.Fprintln(w)
	}
	if c := ex.Concurrency; c != nil {
		fmt.Fprintf(w, "Slots    key %q (group %s): ", c.Key, group)
		switch {
		case !c.Known:
			fmt.Fprintln(w, "state unknown")
		case len(c.Taken) == 0:
			fmt.Fprintf(w, "0 of %d taken: this alert would run now\n", c.Slots)
		default:
			fmt.Fprintf(w, "%d of %d taken", len(c.Taken), c.Slots)
			if len(c.Taken) == c.Slots {
				fmt.Fprint(w, ": this alert would wait")
			}
			fmt.Fprintln(w)
			for _, l := range c.Taken {
				fmt.Fprintf(w, "  slot %d: %s on %s (pid %d), renewed %s, frees itself by %s unless renewed\n",
					l.Slot, l.Alert, l.Host, l.PID, humanTime(l.Renewed), humanTime(l.Until))
			}
		}
	}
	if out.Unknown != "" {
		fmt.Fprintf(w, "Unknown  %s\n", out.Unknown)
	}
	return nil
}
