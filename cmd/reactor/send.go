package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/reactor-alerts/reactor/stream"
)

func sendCommand() *cli.Command {
	env := func(name string) []string { return []string{"REACTOR_SEND_" + name} }
	flags := []cli.Flag{
		&cli.StringFlag{Name: "on", Usage: "alert name: publishes to alerts.NAME (with --file: the lines without a subject or name)", EnvVars: env("ON")},
		&cli.StringFlag{Name: "subject", Usage: "full subject instead of --on, e.g. alerts.db.disk_full", EnvVars: env("SUBJECT")},
		&cli.StringFlag{Name: "severity", Value: stream.SeverityWarning, Usage: "info, warning, error or critical", EnvVars: env("SEVERITY")},
		&cli.StringSliceFlag{Name: "label", Usage: "label k=v (repeatable), e.g. --label host=db-3", EnvVars: env("LABELS")},
		&cli.StringSliceFlag{Name: "annotation", Usage: "annotation k=v (repeatable), e.g. --annotation runbook=https://...", EnvVars: env("ANNOTATIONS")},
		&cli.StringFlag{Name: "id", Usage: "alert id, also the Nats-Msg-Id: a publish repeated with the same id within 2 minutes is stored once (default: a new ULID)", EnvVars: env("ID")},
		&cli.StringFlag{Name: "source", Usage: "the system that fired the alert", EnvVars: env("SOURCE")},
		&cli.StringFlag{Name: "file", Usage: "publish the alerts of an NDJSON file, one JSON alert per line with a subject or a name ('-' reads stdin)", EnvVars: env("FILE"), TakesFile: true},
		jsonFlag("print the result as JSON"),
	}
	return &cli.Command{
		Name:      "send",
		Usage:     "publish an alert (or a file of them) and wait until JetStream stored it",
		UsageText: `reactor send [options] --on NAME "summary"` + "\n" + `reactor send [options] --file alerts.ndjson`,
		Description: `Publishes the alert as JSON with its id as Nats-Msg-Id and waits for the
stream's acknowledgement: once it prints "stored", the alert will be handled
(or dead-lettered) whatever crashes meanwhile. Flags go before the summary.

With --file, each line is a JSON alert such as
   {"name":"disk_full","severity":"critical","summary":"disk 95% on db-3","labels":{"host":"db-3"}}
A line without a subject or name goes to alerts.NAME with --on NAME, and is
refused without it. A bad line is reported with its number and the others
are still sent; the exit status is then 3.

Examples:
   reactor send --on terminator_detected "bad robot detected"
   reactor send --on disk_full --severity critical --label host=db-3 "disk 95% on db-3"
   reactor send --subject alerts.db.replication_lag --json "lag 30s"
   reactor send --file alerts.ndjson
   reactor send --file pages.ndjson --on pager     # lines without a subject go to alerts.pager
   generate-alerts | reactor send --file -`,
		Flags:  append(flags, clientFlags()...),
		Action: sendAction,
	}
}

// sendResult is what send prints for one stored alert.
type sendResult struct {
	Subject   string `json:"subject"`
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

func sendAction(c *cli.Context) error {
	if err := checkNoFlagArgs(c); err != nil {
		return err
	}
	if c.IsSet("file") {
		if c.Args().Present() || c.IsSet("subject") {
			return usageErrorf("--file takes the subjects and summaries from the file: no --subject or summary with it (--on NAME names the lines without one)")
		}
		return sendFile(c)
	}
	a, err := alertFromFlags(c)
	if err != nil {
		return err
	}
	conn, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	msg, err := a.Msg(conn.NC.MaxPayload())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	alerts := topology(c).Alerts
	if err := diskFull(ctx, conn, alerts); err != nil {
		return fmt.Errorf("alert on %s not stored: %w", a.Subject, err)
	}
	ack, err := stream.NewPublisher(conn.JS, stream.PublisherConfig{}).Publish(ctx, msg)
	if err != nil {
		if derr := unansweredFull(ctx, conn, alerts, err); derr != nil {
			return fmt.Errorf("alert on %s not stored: %w", a.Subject, derr)
		}
		return publishError(a.Subject, err)
	}
	res := sendResult{Subject: a.Subject, Stream: ack.Stream, Seq: ack.Sequence, ID: a.ID, Duplicate: ack.Duplicate}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, res)
	}
	dup := ""
	if res.Duplicate {
		dup = " (duplicate: already stored with this id)"
	}
	fmt.Fprintf(c.App.Writer, "stored %s seq=%d id=%s%s\n", res.Subject, res.Seq, res.ID, dup)
	return nil
}

// alertFromFlags builds and checks the alert of --on/--subject and the
// summary argument.
func alertFromFlags(c *cli.Context) (stream.Alert, error) {
	var a stream.Alert
	switch on, subject := c.String("on"), c.String("subject"); {
	case on != "" && subject != "":
		return a, usageErrorf("give --on NAME or --subject SUBJECT, not both")
	case on != "":
		a = stream.NewAlert(on, "")
	case subject != "":
		a = stream.NewAlert(subject, "")
		a.Subject = subject
	default:
		return a, usageErrorf(`say which alert: reactor send --on NAME "summary" (or --subject, or --file)`)
	}
	switch c.NArg() {
	case 0:
		return a, usageErrorf(`missing the alert's summary: reactor send --on %s "what happened"`, a.Name)
	case 1:
		a.Summary = c.Args().First()
	default:
		return a, usageErrorf("send takes one summary argument, got %d: quote it, e.g. \"%s\"", c.NArg(), strings.Join(c.Args().Slice(), " "))
	}
	if id := c.String("id"); id != "" {
		a.ID = id
	}
	a.Severity = strings.ToLower(c.String("severity"))
	a.Source = c.String("source")
	var err error
	if a.Labels, err = keyValues("label", c.StringSlice("label")); err != nil {
		return a, err
	}
	if a.Annotations, err = keyValues("annotation", c.StringSlice("annotation")); err != nil {
		return a, err
	}
	if err := a.Validate(); err != nil {
		return a, &exitError{code: exitUsage, err: err}
	}
	return a, nil
}

func keyValues(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("bad --%s %q: want key=value", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

// publishError explains the publish failures people meet.
func publishError(subject string, err error) error {
	if full := storeFullError(err); full != nil {
		return fmt.Errorf("alert on %s not stored: %w", subject, full)
	}
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("alert on %s too large for the server's max payload: %w", subject, err)
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return withHint(fmt.Errorf("no stream stores %s", subject),
			"alert subjects start with \"alerts.\", and `reactor run` creates the streams the first time it starts")
	}
	return err
}

// fileStats sums up send --file.
type fileStats struct {
	Stored     int         `json:"stored"`
	Duplicates int         `json:"duplicates"`
	Failed     int         `json:"failed"`
	Errors     []lineError `json:"errors,omitempty"`
	// StoreFull is set when a full store refused alerts: send stopped
	// reading there.
	StoreFull *storeFullStop `json:"store_full,omitempty"`
}

type lineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// batchSize bounds the alerts read ahead of their publication.
const batchSize = 1000

func sendFile(c *cli.Context) error {
	var in io.Reader = c.App.Reader
	if name := c.String("file"); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	} else if in == nil {
		in = os.Stdin
	}
	conn, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{})
	maxPayload := conn.NC.MaxPayload()
	defaultSubject := ""
	if on := c.String("on"); on != "" {
		a := stream.NewAlert(on, "")
		if err := a.Validate(); err != nil {
			return usageErrorf("invalid --on %q: want a name without spaces or wildcards, e.g. disk_full", on)
		}
		defaultSubject = a.Subject
	}
	stderr := c.App.ErrWriter
	var st fileStats
	say := func(line int, err error) {
		st.Errors = append(st.Errors, lineError{Line: line, Error: err.Error()})
		fmt.Fprintf(stderr, "reactor: line %d: %v\n", line, err)
	}
	fail := func(line int, err error) {
		st.Failed++
		say(line, err)
	}
	var msgs []*nats.Msg
	var lines []int
	alerts := topology(c).Alerts
	// A full disk's publishes go unanswered: once it is known, the batch
	// in flight stops waiting.
	batchCtx, stopBatch := context.WithCancelCause(c.Context)
	defer stopBatch(nil)
	errDiskFull := errors.New("not sent: the disk under the store is full")
	batches := 0
	flush := func() {
		// The disk is asked about before the first batch, and after the
		// first unanswered publish of each: once, as a server that does not
		// answer may be slow to say so.
		batches++
		asked := false
		if batches == 1 && len(msgs) > 0 {
			if err := diskFull(c.Context, conn, alerts); err != nil {
				// The batch fails at once, each line counted below.
				st.StoreFull = &storeFullStop{Line: lines[0], Disk: true}
				say(lines[0], fmt.Errorf("alert on %s not stored: %w", msgs[0].Subject, err))
				stopBatch(errDiskFull)
			}
		}
		pub.PublishBatch(batchCtx, msgs, func(r stream.Result) {
			line := lines[r.Index]
			if st.StoreFull == nil && r.Err != nil && !asked && errors.Is(r.Err, context.DeadlineExceeded) {
				asked = true
				if err := unansweredFull(c.Context, conn, alerts, r.Err); err != nil {
					st.StoreFull = &storeFullStop{Line: line, Disk: true}
					fail(line, fmt.Errorf("alert on %s not stored: %w", msgs[r.Index].Subject, err))
					st.StoreFull.refuse(line)
					stopBatch(errDiskFull)
					return
				}
			}
			switch {
			case st.StoreFull != nil && st.StoreFull.Disk && r.Err != nil:
				st.Failed++
				st.StoreFull.refuse(line)
			case errors.Is(r.Err, stream.ErrStoreFull):
				// Said once: the other lines of the batch in flight meet
				// the same full store.
				if st.StoreFull == nil {
					st.StoreFull = &storeFullStop{Line: line}
					fail(line, publishError(msgs[r.Index].Subject, r.Err))
				} else {
					st.Failed++
				}
				st.StoreFull.refuse(line)
			case r.Err != nil:
				fail(lines[r.Index], publishError(msgs[r.Index].Subject, r.Err))
			case r.Ack.Duplicate:
				st.Duplicates++
			default:
				st.Stored++
			}
		})
		msgs, lines = msgs[:0], lines[:0]
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), int(maxPayload)+1)
	n := 0
	for sc.Scan() {
		n++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		msg, err := lineMsg(text, maxPayload, defaultSubject)
		if err != nil {
			fail(n, err)
			continue
		}
		msgs, lines = append(msgs, msg), append(lines, n)
		if len(msgs) == batchSize {
			flush()
			if st.StoreFull != nil {
				break
			}
		}
	}
	if st.StoreFull != nil {
		// Stopped: is there a line after the batch in flight?
		for sc.Scan() {
			if n++; strings.TrimSpace(sc.Text()) != "" {
				st.StoreFull.NotSentFrom = n
				break
			}
		}
	} else {
		flush()
	}
	if err := sc.Err(); err != nil && st.StoreFull == nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("longer than the server's max payload (%d bytes); stopped reading", maxPayload)
		}
		fail(n+1, err)
	}
	if err := c.Context.Err(); err != nil {
		return err
	}
	if c.Bool("json") {
		if err := writeJSON(c.App.Writer, st); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.App.Writer, "stored %s (%d duplicates, %d failed)\n", plural(uint64(st.Stored), "alert"), st.Duplicates, st.Failed)
	}
	if st.StoreFull != nil {
		return partialError("%s", st.StoreFull)
	}
	if st.Failed > 0 {
		return partialError("%d of %d alerts failed", st.Failed, st.Stored+st.Duplicates+st.Failed)
	}
	return nil
}

// lineMsg turns one NDJSON line into a message (see stream.ReadAlert):
// defaultSubject (--on) is the subject of a line without one.
func lineMsg(line string, maxPayload int64, defaultSubject string) (*nats.Msg, error) {
	a, err := stream.ReadAlert([]byte(line), defaultSubject)
	if err != nil {
		return nil, err
	}
	return a.Msg(maxPayload)
}
