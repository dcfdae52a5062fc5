package console

import (
	"fmt"
	"slices"
	"strings"

	"github.com/reactor-alerts/reactor/handlers"
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
	if len(g.FilterSubjects) > 0 && !slices.ContainsFunc(g.FilterSubjects, func(p string) bool { return subjectMatches(p, f.subject) }) {
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
