package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/stream"

	"github.com/dustin/go-humanize"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show the streams and consumer groups at a glance",
		UsageText: "reactor status [--json] [options]",
		Description: `Shows the alert stream (every alert once, kept for the groups and for replay:
size, age, how many came in the last minute and hour, its size limit), the
JetStream store's use against its limit (FULL once new alerts are refused,
with what to do), the dead letters, and
each consumer group's progress: its backlog (alerts not settled yet: pending
plus in flight), the age of its oldest unsettled alert (alerts older than the
stream's max age leave it, settled or not), redeliveries, idle pull requests,
where the group started (run --start), and what its handler entries filtered,
suppressed and limited (reactor rules explain).

Examples:
   reactor status
   reactor status --json | jq .groups`,
		Flags:  append([]cli.Flag{jsonFlag("print the status as one JSON object (snake_case keys)")}, clientFlags()...),
		Action: statusAction,
	}
}

func statusAction(c *cli.Context) error {
	if err := checkNoFlagArgs(c); err != nil {
		return err
	}
	if c.Args().Present() {
		return usageErrorf("status takes no arguments")
	}
	conn, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := stream.ReadStatus(c.Context, conn.JS, topology(c))
	if err != nil {
		return err
	}
	st.Server = conn.ServerStatus()
	rules, err := handlers.ReadCounts(c.Context, conn.JS)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSONIndent(c.App.Writer, struct {
			*stream.Status
			Rules []handlers.EntryCount `json:"rules,omitempty"`
		}{st, rules})
	}
	if err := writeStatus(c.App.Writer, st); err != nil {
		return err
	}
	return writeRuleCounts(c.App.Writer, rules)
}

func writeStatus(w io.Writer, st *stream.Status) error {
	now := st.Time
	srv := st.Server
	where := srv.URL
	if srv.Embedded {
		where += " (embedded, data in " + srv.DataDir + ")"
	}
	fmt.Fprintf(w, "Server   %s, named %s, nats-server %s", where, orDash(srv.Name), srv.Version)
	if srv.Cluster != "" {
		fmt.Fprintf(w, ", cluster %s", srv.Cluster)
	}
	fmt.Fprintln(w)

	a := st.Alerts
	maxAge := time.Duration(a.MaxAgeSeconds * float64(time.Second))
	fmt.Fprintf(w, "Alerts   %s: %s, %s, oldest %s, newest %s; %s in the last minute, %s in the last hour; kept %s%s\n",
		a.Name, plural(a.Messages, "alert"), humanize.IBytes(a.Bytes), ago(now, a.FirstTime), ago(now, a.LastTime), orUnknown(a.LastMinute), orUnknown(a.LastHour), keptFor(maxAge), streamLimit(a))
	fmt.Fprintf(w, "Store    %s\n", storeLine(st.Store))
	d := st.DLQ
	fmt.Fprintf(w, "DLQ      %s: %s", d.Name, plural(d.Messages, "dead letter"))
	if d.Messages > 0 {
		fmt.Fprintf(w, ", newest %s; %s in the last hour (reactor dlq ls)", ago(now, d.LastTime), orUnknown(d.LastHour))
	}
	fmt.Fprintln(w)

	if len(st.Groups) == 0 {
		fmt.Fprintln(w, "\nNo consumer group yet: `reactor run` creates one.")
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tBACKLOG\tOLDEST UNSETTLED\tPENDING\tIN FLIGHT\tREDELIVERED\tWAITING PULLS\tLAST ACTIVE\tSTART\tFILTER\tSTATE")
	for _, g := range st.Groups {
		filter := "all"
		if len(g.FilterSubjects) > 0 {
			filter = strings.Join(g.FilterSubjects, ",")
		}
		oldest := ago(now, g.OldestUnsettled)
		if maxAge > 0 && !g.OldestUnsettled.IsZero() && now.Sub(g.OldestUnsettled) > maxAge/2 {
			oldest += " (past half the retention!)"
		}
		active := ago(now, g.LastActive)
		if g.LastActiveApprox {
			active += " or later" // the server restarted: its last alert's time
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", g.Name, g.Backlog, oldest, g.NumPending, g.AckPending, g.Redelivered, g.Waiting, active, g.Start, filter, groupState(now, g))
	}
	return tw.Flush()
}

func keptFor(d time.Duration) string {
	if d <= 0 {
		return "forever"
	}
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// groupState says whether a group receives alerts: "active", "paused" (until
// resumed), or "paused 29m left".
func groupState(now time.Time, g stream.GroupStatus) string {
	switch left := g.PausedUntil.Sub(now); {
	case !g.Paused:
		return "active"
	case left > stream.PauseIndefinitely/2:
		return "paused"
	default:
		return "paused " + left.Truncate(time.Second).String() + " left"
	}
}

func orUnknown(n *uint64) string {
	if n == nil {
		return "?"
	}
	return fmt.Sprint(*n)
}

// ago says how long before now t was ("3 minutes ago"), "-" for the zero
// time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return humanize.RelTime(t, now, "ago", "from now")
}

// streamLimit says how full a stream with a size limit is: "; max 16 KiB,
// 97% used", or FULL with what to do.
func streamLimit(s stream.StreamStatus) string {
	if s.MaxBytes == 0 {
		return ""
	}
	if s.Full {
		return fmt.Sprintf("; max %s: FULL, new alerts are refused: %s", humanize.IBytes(s.MaxBytes), storeFullHint(stream.LimitStream))
	}
	return fmt.Sprintf("; max %s, %s used", humanize.IBytes(s.MaxBytes), percent(s.Bytes, s.MaxBytes))
}

// storeLine says how much of the JetStream store is used, against whose
// limit, and FULL with what to do.
func storeLine(s stream.StoreStatus) string {
	line := fmt.Sprintf("%s used by JetStream (the server does not tell its limit)", humanize.IBytes(s.Used))
	if s.Limit > 0 {
		line = fmt.Sprintf("%s of %s used by JetStream (%s), the %s's limit", humanize.IBytes(s.Used), humanize.IBytes(s.Limit), percent(s.Used, s.Limit), s.LimitOf)
	}
	if s.DiskFree != nil {
		line += fmt.Sprintf("; %s free on the disk", humanize.IBytes(*s.DiskFree))
	}
	switch {
	case s.Full && s.FullOf == stream.LimitDisk && s.WriteError != "":
		line += fmt.Sprintf(": the disk is FULL, the server stores nothing more (%s): %s", s.WriteError, storeFullHint(s.FullOf))
	case s.Full && s.FullOf == stream.LimitDisk:
		line += ": the disk is FULL, new alerts will not be stored: " + storeFullHint(s.FullOf)
	case s.Full:
		line += ": FULL, new alerts are refused: " + storeFullHint(s.FullOf)
	}
	return line
}

func percent(used, limit uint64) string {
	return fmt.Sprintf("%.0f%%", 100*float64(used)/float64(limit))
}
