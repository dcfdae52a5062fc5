package handlers

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/reactor-alerts/reactor/stream"
)

// Explanation says what the rules would do with an alert, without doing it.
type Explanation struct {
	// Subject is the alert's subject.
	Subject string `json:"subject"`
	// Candidates are the entries whose pattern matches the subject, in
	// evaluation order, up to the one that takes the alert.
	Candidates []Candidate `json:"candidates"`
	// Entry is the name of the entry that takes the alert; empty if none
	// does (Outcome no_handler).
	Entry string `json:"entry,omitempty"`
	// Outcome is what would happen: OutcomeAct, OutcomeFiltered,
	// OutcomeSuppressed or OutcomeNoHandler. A limited entry may make the
	// alert wait first (see Limit).
	Outcome string `json:"outcome"`
	// Actions are the actions that would run, in order.
	Actions []string `json:"actions,omitempty"`
	// Suppress is the window the alert falls in, if the entry suppresses.
	Suppress *SuppressState `json:"suppress,omitempty"`
	// Limit describes the entry's limits, if any.
	Limit string `json:"limit,omitempty"`
	// Concurrency is the state of the slots of the alert's key, if the
	// entry limits its runs at once.
	Concurrency *ConcurrencyState `json:"concurrency,omitempty"`
	// EndsWindows names the entries whose suppression window a resolved
	// alert ends.
	EndsWindows []string `json:"ends_windows,omitempty"`
}

// Candidate is one entry whose pattern matches, with its verdict.
type Candidate struct {
	Entry   string  `json:"entry"`
	Pattern string  `json:"pattern"`
	Where   string  `json:"where"`
	Checks  []Check `json:"checks,omitempty"`
	Takes   bool    `json:"takes"`
}

// SuppressState is a suppression window as explain sees it.
type SuppressState struct {
	Window
	// For is the entry's window.
	For time.Duration `json:"for_ns"`
	// Known reports whether the window's state could be read: the rules
	// are started (see Rules.Start).
	Known bool `json:"known"`
}

// Outcomes of Explain.
const (
	OutcomeAct        = "act"
	OutcomeFiltered   = "filtered"
	OutcomeSuppressed = "suppressed"
	OutcomeNoHandler  = "no_handler"
)

// Explain evaluates the rules on a as Route would (the same decision), and
// reads (never opens, ends or creates) the suppression window it falls in,
// the group's when rs is started (see Start). It runs no action.
func (rs *Rules) Explain(ctx context.Context, a stream.Alert) (Explanation, error) {
	ex := Explanation{Subject: a.Subject, Outcome: OutcomeNoHandler}
	d := rs.decide(a.Subject, a, func(ru *rule, takes bool) {
		ex.Candidates = append(ex.Candidates, Candidate{Entry: ru.name, Pattern: ru.pattern.String(), Where: ru.where, Checks: ru.cond.checks(a), Takes: takes})
	})
	for _, ru := range d.ends {
		ex.EndsWindows = append(ex.EndsWindows, ru.name)
	}
	taken := d.taker
	if taken == nil {
		return ex, nil
	}
	ex.Entry = taken.name
	if len(taken.actions) == 0 {
		ex.Outcome = OutcomeFiltered
		return ex, nil
	}
	ex.Outcome = OutcomeAct
	for _, act := range taken.actions {
		ex.Actions = append(ex.Actions, describeAction(act, a))
	}
	if s := taken.suppress; s != nil && a.Status != stream.StatusResolved {
		store := rs.store.Load()
		w, err := s.peek(ctx, store, a)
		if err != nil {
			return ex, err
		}
		ex.Suppress = &SuppressState{Window: w, For: s.window, Known: store != nil}
		if w.Open {
			ex.Outcome = OutcomeSuppressed
		}
	}
	if l := taken.limit; l != nil {
		ex.Limit = l.describe()
		if c := l.conc; c != nil {
			store := rs.leases.Load()
			st, err := c.peek(ctx, store, a)
			if err != nil {
				return ex, err
			}
			ex.Concurrency = &st
		}
	}
	return ex, nil
}

// describeAction says what act would do with a: the command line as it
// would run, the host a request would go to.
func describeAction(act action, a stream.Alert) string {
	d := TemplateData{Alert: a, Delivered: 1}
	switch x := act.(type) {
	case *Print:
		return "print"
	case *Exec:
		t, err := x.compiled.get(x.compile)
		if err != nil {
			return "exec " + strings.Join(x.Command, " ")
		}
		argv, _, err := t.render(x.Command[0], d)
		if err != nil {
			return fmt.Sprintf("exec %s (%v)", strings.Join(x.Command, " "), err)
		}
		return "exec " + strings.Join(argv, " ")
	case *Webhook:
		// The URL may hold a secret in its path or query: the host only.
		t, err := x.compiled.get(x.compile)
		if err != nil {
			return "webhook"
		}
		raw, err := t.url.render(d, maxFieldLen)
		if err != nil {
			return fmt.Sprintf("webhook (url: %v)", err)
		}
		if u, err := url.Parse(raw); err == nil {
			return fmt.Sprintf("webhook POST %s://%s/...", u.Scheme, u.Host)
		}
		return "webhook"
	case *Slack:
		if u, err := checkURL(x.WebhookURL); err == nil {
			return "slack POST " + hostURL(u)
		}
		return "slack"
	case *PagerDuty:
		t, err := x.compiled.get(x.compile)
		if err != nil {
			return "pagerduty"
		}
		ev, err := x.event(t, d)
		if err != nil {
			return fmt.Sprintf("pagerduty (%v)", err)
		}
		return fmt.Sprintf("pagerduty %s dedup_key %s POST %s", ev.EventAction, ev.DedupKey, t.url)
	}
	return fmt.Sprintf("%T", act)
}

func (l *limiter) describe() string {
	var parts []string
	if l.interval > 0 {
		parts = append(parts, fmt.Sprintf("one run every %s", l.interval))
		if l.burst > 1 {
			parts[0] += fmt.Sprintf(" after a burst of %d", l.burst)
		}
		parts[0] += " in each process"
	}
	if c := l.conc; c != nil {
		p := fmt.Sprintf("at most %d at once across the group", c.slots)
		if c.per != nil {
			p = fmt.Sprintf("at most %d at once per key %s across the group", c.slots, c.per.text)
		}
		parts = append(parts, p+fmt.Sprintf(" (lease %s)", c.lease))
	}
	return strings.Join(parts, ", ")
}
