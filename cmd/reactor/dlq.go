package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// dlqLimitDefault is how many dead letters dlq ls lists unless told.
const dlqLimitDefault = 100

func dlqCommand() *cli.Command {
	subjectFlag := func(usage string) cli.Flag {
		return &cli.StringFlag{Name: "subject", Usage: usage, EnvVars: []string{"REACTOR_DLQ_SUBJECT"}}
	}
	allFlag := func(usage string) cli.Flag {
		return &cli.BoolFlag{Name: "all", Usage: usage}
	}
	return &cli.Command{
		Name:  "dlq",
		Usage: "list, show, redrive or purge dead letters",
		UsageText: `reactor dlq ls [--subject S] [--limit N] [--json]
reactor dlq show [--json] SEQ
reactor dlq redrive SEQ... | --all [--subject S]
reactor dlq purge SEQ... | --all [--subject S]`,
		Description: `A dead letter is an alert that failed permanently or on its last delivery, kept
in the dead-letter stream with the reason: the error, the handler pattern, the
deliveries and the times of the first and last attempt. SEQ is its sequence in
the dead-letter stream, as dlq ls shows it.`,
		Subcommands: []*cli.Command{
			{
				Name:      "ls",
				Usage:     "list dead letters, newest first",
				UsageText: "reactor dlq ls [--subject S] [--limit N] [--json] [options]",
				Description: `Examples:
   reactor dlq ls
   reactor dlq ls --subject 'alerts.db.>' --limit 20
   reactor dlq ls --json | jq -r .error`,
				Flags: append([]cli.Flag{
					subjectFlag("only dead letters of alerts on this subject (wildcards * and >)"),
					&cli.IntFlag{Name: "limit", Value: dlqLimitDefault, Usage: "list the newest this many; 0 lists all", EnvVars: []string{"REACTOR_DLQ_LIMIT"}},
					jsonFlag("one JSON object per dead letter"),
				}, clientFlags()...),
				Action: dlqList,
			},
			{
				Name:      "show",
				Usage:     "show one dead letter: every header, the full error and the payload",
				UsageText: "reactor dlq show [--json] SEQ",
				Description: `Examples:
   reactor dlq show 42
   reactor dlq show --json 42`,
				Flags:  append([]cli.Flag{jsonFlag("print it as one JSON object")}, clientFlags()...),
				Action: dlqShow,
			},
			{
				Name:      "redrive",
				Usage:     "put dead letters back into processing for their group, with a new message id",
				UsageText: "reactor dlq redrive SEQ... | --all [--subject S] [options]",
				Description: `Puts each dead letter back into processing for the group that dead-lettered it
(its Reactor-Group header), and for no other group: publishes its payload and
headers to the alert stream on the group's redrive subject (redrive.GROUP.SUBJECT),
with a new Nats-Msg-Id and the header Reactor-Redriven-From: SEQ, waits for the
stream to store it, and only then deletes the dead letter. The group's handlers
see it under its original subject. Redriving the same dead letter again within
the duplicate window stores it once.

Examples:
   reactor dlq redrive 42 43
   reactor dlq redrive --all --subject 'alerts.db.>'`,
				Flags: append([]cli.Flag{
					allFlag("redrive every dead letter (of --subject)"),
					subjectFlag("with --all: only dead letters of alerts on this subject"),
					jsonFlag("one JSON object per redriven dead letter"),
				}, clientFlags()...),
				Action: dlqRedrive,
			},
			{
				Name:      "purge",
				Usage:     "delete dead letters for good",
				UsageText: "reactor dlq purge SEQ... | --all [--subject S] [options]",
				Description: `Deletes without asking, and prints what it deleted.

Examples:
   reactor dlq purge 42
   reactor dlq purge --all --subject alerts.test`,
				Flags: append([]cli.Flag{
					allFlag("purge every dead letter (of --subject)"),
					subjectFlag("with --all: only dead letters of alerts on this subject"),
				}, clientFlags()...),
				Action: dlqPurge,
			},
		},
	}
}

// dlqView is a dead letter as dlq prints it in JSON.
type dlqView struct {
	Seq          uint64              `json:"seq"`
	Stored       time.Time           `json:"stored"`
	Subject      string              `json:"subject"`
	Reason       string              `json:"reason"`
	Error        string              `json:"error"`
	Entry        string              `json:"entry,omitempty"`
	Group        string              `json:"group,omitempty"`
	Deliveries   int                 `json:"deliveries"`
	FirstAttempt time.Time           `json:"first_attempt,omitzero"`
	LastAttempt  time.Time           `json:"last_attempt,omitzero"`
	Queued       time.Time           `json:"queued,omitzero"`
	Stream       string              `json:"stream,omitempty"`
	StreamSeq    uint64              `json:"stream_seq,omitempty"`
	MsgID        string              `json:"msg_id,omitempty"`
	RedrivenFrom uint64              `json:"redriven_from,omitempty"`
	Headers      map[string][]string `json:"headers,omitempty"`
	Payload      json.RawMessage     `json:"payload,omitempty"`
	PayloadText  string              `json:"payload_text,omitempty"`
}

func viewOf(e stream.DLQEntry, full bool) dlqView {
	v := dlqView{
		Seq: e.DLQSequence, Stored: e.Stored.UTC(), Subject: e.Subject, Reason: e.Reason, Error: e.Error,
		Entry: e.Entry, Group: e.Group, Deliveries: e.Deliveries,
		FirstAttempt: e.FirstAttempt, LastAttempt: e.LastAttempt, Queued: e.Queued,
		Stream: e.Stream, StreamSeq: e.Sequence, MsgID: e.MsgID, RedrivenFrom: e.RedrivenFrom,
	}
	if full {
		v.Headers = e.RawHeader
		if json.Valid(e.Data) {
			v.Payload = e.Data
		} else {
			v.PayloadText = string(e.Data)
		}
	}
	return v
}

func dlqList(c *cli.Context) error {
	if err := checkNoFlagArgs(c); err != nil {
		return err
	}
	if c.Args().Present() {
		return usageErrorf("dlq ls takes no arguments: use --subject to filter")
	}
	subject, err := subjectFilter(c)
	if err != nil {
		return err
	}
	q, conn, err := openDLQ(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	entries, total, err := q.List(c.Context, subject, c.Int("limit"))
	if err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("json") {
		for _, e := range entries {
			if err := writeJSON(w, viewOf(e, false)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(entries) == 0 {
		fmt.Fprintln(w, "no dead letters")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tDEAD-LETTERED\tSUBJECT\tREASON\tDELIVERIES\tERROR")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", e.DLQSequence, humanTime(e.Stored), e.Subject, e.Reason, e.Deliveries, firstLine(e.Error, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if uint64(len(entries)) < total {
		fmt.Fprintf(w, "(the newest %d of %d dead letters: --limit 0 lists all)\n", len(entries), total)
	}
	return nil
}

func dlqShow(c *cli.Context) error {
	if err := checkNoFlagArgs(c); err != nil {
		return err
	}
	if c.NArg() != 1 {
		return usageErrorf("dlq show takes one dead-letter sequence: reactor dlq show SEQ")
	}
	seq, err := parseSeq(c.Args().First())
	if err != nil {
		return err
	}
	q, conn, err := openDLQ(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	e, err := q.Get(c.Context, seq)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSONIndent(c.App.Writer, viewOf(e, true))
	}
	return writeDeadLetter(c.App.Writer, e)
}

func writeDeadLetter(w io.Writer, e stream.DLQEntry) error {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Dead letter", fmt.Sprintf("%d (%s)", e.DLQSequence, e.DLQSubject))
	row("Stored", humanTime(e.Stored))
	row("Subject", e.Subject)
	row("Reason", e.Reason)
	row("Entry", e.Entry)
	row("Group", e.Group)
	row("Deliveries", strconv.Itoa(e.Deliveries))
	row("Queued", humanTime(e.Queued))
	row("First attempt", humanTime(e.FirstAttempt))
	row("Last attempt", humanTime(e.LastAttempt))
	if e.Stream != "" {
		row("Stream", fmt.Sprintf("%s seq %d", e.Stream, e.Sequence))
	}
	row("Message id", e.MsgID)
	if e.RedrivenFrom > 0 {
		row("Redriven from", fmt.Sprintf("dead letter %d", e.RedrivenFrom))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nError:")
	for line := range strings.SplitSeq(e.Error, "\n") {
		fmt.Fprintln(w, "  "+line)
	}
	fmt.Fprintln(w, "\nHeaders:")
	for _, k := range slices.Sorted(maps.Keys(e.RawHeader)) {
		for _, v := range e.RawHeader[k] {
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	fmt.Fprintln(w, "\nPayload:")
	var pretty bytes.Buffer
	if json.Indent(&pretty, e.Data, "  ", "  ") == nil {
		fmt.Fprintln(w, "  "+pretty.String())
	} else {
		fmt.Fprintln(w, "  "+strings.ReplaceAll(string(e.Data), "\n", "\n  "))
	}
	return nil
}

func dlqRedrive(c *cli.Context) error {
	b, err := openBatch(c, "redrive")
	if err != nil {
		return err
	}
	defer b.conn.Close()
	w, stderr := c.App.Writer, c.App.ErrWriter
	done := func(r stream.Redriven, err error) {
		if err != nil {
			fmt.Fprintf(stderr, "reactor: %v\n", err)
			return
		}
		if c.Bool("json") {
			_ = writeJSON(w, r)
			return
		}
		dup := ""
		if r.Duplicate {
			dup = " (already redriven: stored once)"
		}
		group := "every group (no Reactor-Group header)"
		if r.Group != "" {
			group = "group " + r.Group
		}
		fmt.Fprintf(w, "redriven dead letter %d (%s) for %s: seq=%d id=%s%s\n", r.DLQSequence, r.Subject, group, r.Sequence, r.MsgID, dup)
	}
	var ok, failed int
	if b.all {
		if ok, failed, err = b.q.RedriveAll(c.Context, b.subject, done); err != nil {
			return err
		}
	} else if ok, failed, err = b.each(c.Context, func(seq uint64) error {
		r, err := b.q.Redrive(c.Context, seq)
		done(r, err)
		return err
	}); err != nil {
		return err
	}
	if !c.Bool("json") && (b.all || len(b.seqs) > 1) {
		fmt.Fprintf(w, "redriven %d dead letters, %d failed\n", ok, failed)
	}
	return batchResult("redrive", ok, failed)
}

func dlqPurge(c *cli.Context) error {
	b, err := openBatch(c, "purge")
	if err != nil {
		return err
	}
	defer b.conn.Close()
	w := c.App.Writer
	if b.all {
		n, err := b.q.PurgeAll(c.Context, b.subject)
		if err != nil {
			return err
		}
		what := "all dead letters"
		if b.subject != "" {
			what = "the dead letters of " + b.subject
		}
		fmt.Fprintf(w, "purged %d dead letters (%s)\n", n, what)
		return nil
	}
	ok, failed, err := b.each(c.Context, func(seq uint64) error {
		e, err := b.q.Purge(c.Context, seq)
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "reactor: %v\n", err)
			return err
		}
		fmt.Fprintf(w, "purged dead letter %d: %s, %s: %s\n", e.DLQSequence, e.Subject, e.Reason, firstLine(e.Error, 80))
		return nil
	})
	if err != nil {
		return err
	}
	return batchResult("purge", ok, failed)
}

// openDLQ connects as the command's flags say and returns the dead-letter
// stream of their topology, and the connection for the caller to close.
func openDLQ(c *cli.Context) (*stream.DLQ, *stream.Conn, error) {
	conn, err := connect(c)
	if err != nil {
		return nil, nil, err
	}
	return stream.NewDLQ(conn.JS, topology(c)), conn, nil
}

// dlqBatch is what redrive and purge act on: the dead letters their
// arguments name, SEQ... or --all [--subject S], and the DLQ holding them.
type dlqBatch struct {
	q       *stream.DLQ
	conn    *stream.Conn // for the caller to close
	seqs    []uint64
	all     bool
	subject string
}

// openBatch reads the arguments of verb and connects to the DLQ.
func openBatch(c *cli.Context, verb string) (*dlqBatch, error) {
	seqs, all, subject, err := targets(c, verb)
	if err != nil {
		return nil, err
	}
	q, conn, err := openDLQ(c)
	if err != nil {
		return nil, err
	}
	return &dlqBatch{q: q, conn: conn, seqs: seqs, all: all, subject: subject}, nil
}

// each calls do for each sequence in turn and counts the calls that
// succeeded and failed. A failure does not stop the batch, unless ctx is
// done (interrupted): then it returns ctx's error.
func (b *dlqBatch) each(ctx context.Context, do func(seq uint64) error) (ok, failed int, err error) {
	for _, seq := range b.seqs {
		if err := do(seq); err != nil {
			failed++
			if ctx.Err() != nil {
				return ok, failed, ctx.Err()
			}
			continue
		}
		ok++
	}
	return ok, failed, nil
}

// batchResult is the error of a batch of which some items failed: exit 1 if
// all did, 3 if some did.
func batchResult(what string, ok, failed int) error {
	switch {
	case failed == 0:
		return nil
	case ok == 0:
		return fmt.Errorf("%s failed", what)
	}
	return partialError("%s: %d of %d failed", what, failed, ok+failed)
}

// targets reads the SEQ... | --all [--subject] arguments of redrive and purge.
func targets(c *cli.Context, verb string) (seqs []uint64, all bool, subject string, err error) {
	if err := checkNoFlagArgs(c); err != nil {
		return nil, false, "", err
	}
	all = c.Bool("all")
	switch {
	case all && c.Args().Present():
		return nil, false, "", usageErrorf("dlq %s: give sequences or --all, not both", verb)
	case !all && !c.Args().Present():
		return nil, false, "", usageErrorf("dlq %s: which dead letters? give their sequences (see 'reactor dlq ls') or --all", verb)
	case !all && c.IsSet("subject"):
		return nil, false, "", usageErrorf("dlq %s: --subject goes with --all", verb)
	}
	for _, a := range c.Args().Slice() {
		seq, err := parseSeq(a)
		if err != nil {
			return nil, false, "", err
		}
		seqs = append(seqs, seq)
	}
	subject, err = subjectFilter(c)
	return seqs, all, subject, err
}

func subjectFilter(c *cli.Context) (string, error) {
	s := c.String("subject")
	if s == "" {
		return "", nil
	}
	if _, err := processor.ParsePattern(s); err != nil {
		return "", usageErrorf("invalid --subject: %w", err)
	}
	return s, nil
}

func parseSeq(s string) (uint64, error) {
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil || seq == 0 {
		return 0, usageErrorf("bad dead-letter sequence %q: want a number from 'reactor dlq ls'", s)
	}
	return seq, nil
}
