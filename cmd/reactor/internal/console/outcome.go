package console

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// groupFate is what became of an alert in one group: what its consumer
// state, its dead letters and its run records say.
type groupFate struct {
	Group string
	State string
	Class string // ok, warn, bad, muted
	// Short is the state in a word or two, for a list's column.
	Short string
	// Run is the newest record of the group's runs for the alert, if any.
	Run *handlers.Run
}

// alertFacts are what the console read about one alert: its sequence and
// subject, the group it was redriven for (if any), its decoded form (nil if
// it is not one) and its dead letters.
type alertFacts struct {
	seq         uint64
	subject     string
	redrivenFor string
	alert       *stream.Alert
	dead        []stream.DLQEntry
}

// fate says what group g did with the alert of f, given the newest record
// of its runs (nil if none): not for the group, dead-lettered, acted ok,
// suppressed, failed and retrying, filtered (the console's own rules tell),
// settled without a record, in flight, or waiting.
func (c *Console) fate(f alertFacts, g stream.GroupStatus, last *handlers.Run) groupFate {
	out := groupFate{Group: g.Name, Run: last}
	subject := f.subject
	set := func(short, class, state string) groupFate {
		out.Short, out.Class, out.State = short, class, state
		if g.Paused && class != "muted" && f.seq > g.AckFloor {
			out.State += "; the group is paused"
		}
		return out
	}
	if f.redrivenFor != "" && f.redrivenFor != g.Name {
		return set("-", "muted", "not for this group (redriven for "+f.redrivenFor+")")
	}
	if len(g.FilterSubjects) > 0 && !slices.ContainsFunc(g.FilterSubjects, func(f string) bool { return matches(f, subject) }) {
		return set("-", "muted", "not for this group (filter "+strings.Join(g.FilterSubjects, ", ")+")")
	}
	for _, e := range f.dead {
		if e.Group == g.Name {
			n := fmt.Sprintf("%d deliveries", e.Deliveries)
			if e.Deliveries == 1 {
				n = "1 delivery"
			}
			return set("dead-lettered", "bad", fmt.Sprintf("dead-lettered (%s) after %s", e.Reason, n))
		}
	}
	settled := f.seq <= g.AckFloor
	if last != nil {
		what := last.Action + " of " + last.Entry
		switch {
		case last.Outcome == handlers.RunOK:
			return set("acted ok", "ok", fmt.Sprintf("acted: %s ok, attempt %d", what, last.Delivered))
		case last.Outcome == handlers.RunSuppressed:
			return set("suppressed", "muted", "suppressed by "+last.Entry+": "+last.Error)
		case !settled:
			return set("failed, retrying", "warn", fmt.Sprintf("failed, retrying: %s %s on attempt %d", what, last.Outcome, last.Delivered))
		}
		return set("failed", "bad", fmt.Sprintf("%s %s on attempt %d", what, last.Outcome, last.Delivered))
	}
	switch {
	case settled && g.Name == c.cfg.Group && c.filtered(f):
		return set("filtered", "muted", "filtered: dropped on purpose by an entry without actions")
	case settled:
		return set("handled", "ok", "settled without a run record (printed, filtered, or a Go handler)")
	case f.seq > g.Delivered:
		return set("waiting", "warn", "waiting: not delivered yet")
	}
	return set("in flight", "warn", "delivered: in flight, or waiting for a retry or a limit")
}

// filtered reports whether the console's own rules (those of its group)
// drop the alert of f on purpose; false when it has none or f is not an
// alert.
func (c *Console) filtered(f alertFacts) bool {
	if c.cfg.Rules == nil || f.alert == nil {
		return false
	}
	_, acts, ok := c.cfg.Rules.Entry(*f.alert)
	return ok && !acts
}

// listFates fills in what became of each row's alert in each group, for the
// alerts list: one read of the groups, one bounded read of the dead letters
// stored since the page's oldest alert, and one request per alert and group
// for its newest run. What cannot be read leaves the column empty, the
// list shown all the same.
func (c *Console) listFates(ctx context.Context, rows []alertRow, decoded []*stream.Alert, oldest time.Time) {
	if len(rows) == 0 {
		return
	}
	st, err := stream.ReadStatus(ctx, c.cfg.JS, c.cfg.Topology)
	if err != nil {
		c.log.Warn("console: read groups", "err", err)
		return
	}
	seqs := make([]uint64, len(rows))
	onPage := make(map[string]bool, len(rows))
	for i, r := range rows {
		seqs[i] = r.Seq
		onPage[strconv.FormatUint(r.Seq, 10)] = true
	}
	dead := map[uint64][]stream.DLQEntry{}
	page, err := stream.ReadNewest(ctx, c.cfg.JS, c.cfg.Topology.DLQ, stream.NewestOptions{
		Since: oldest, Budget: min(c.cfg.ScanLimit, deadLetterSearch),
		Matches: func(m stream.StoredMsg) bool {
			return m.Header.Get(stream.HeaderStream) == c.cfg.Topology.Alerts && onPage[m.Header.Get(stream.HeaderSequence)]
		},
	})
	if err != nil {
		c.log.Warn("console: read dead letters", "err", err)
	}
	for _, m := range page.Msgs {
		e := stream.ParseDeadLetter(m.Subject, m.Data, m.Header)
		dead[e.Sequence] = append(dead[e.Sequence], stream.DLQEntry{DeadLetter: e})
	}
	for _, g := range st.Groups {
		last, err := handlers.LastRuns(ctx, c.cfg.JS, g.Name, seqs)
		if err != nil {
			c.log.Warn("console: read runs", "group", g.Name, "err", err)
		}
		for i := range rows {
			f := alertFacts{seq: rows[i].Seq, subject: rows[i].Subject, redrivenFor: rows[i].RedrivenFor, alert: decoded[i], dead: dead[rows[i].Seq]}
			var run *handlers.Run
			if r, ok := last[rows[i].Seq]; ok {
				run = &r
			}
			if fate := c.fate(f, g, run); fate.Class != "muted" || fate.Short != "-" {
				rows[i].Fates = append(rows[i].Fates, fate)
			}
		}
	}
}

// matches reports whether subject matches the pattern (a group's filter).
func matches(pattern, subject string) bool {
	p, err := processor.ParsePattern(pattern)
	return err == nil && p.Match(subject)
}
