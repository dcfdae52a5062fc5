package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// Rules is a handlers Config compiled: its entries in evaluation order, each
// with its conditions, suppression, limits, actions and counts. It is a
// processor.Handler; Register adds it to a router under every pattern of the
// config. Build it with NewRules.
type Rules struct {
	rules  []*rule // in evaluation order
	store  *suppressStore
	log    *slog.Logger
	counts *Counts
}

// rule is one entry, compiled.
type rule struct {
	name     string
	pattern  string
	where    string // "line 4" or "handlers[3]"
	tokens   []string
	rank     []int8
	cond     conditions
	suppress *suppressor // nil: none
	limit    *limiter    // nil: none
	actions  chain       // empty: filter
	counts   *entryCounts
}

// NewRules checks cfg (the default route if it has none) and compiles it.
func NewRules(cfg Config, deps Deps) (*Rules, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("handlers: %w", err)
	}
	deps = deps.withDefaults()
	out := SyncWriter(deps.Out)
	rs := &Rules{log: deps.Logger, counts: newCounts()}
	if deps.JetStream != nil {
		rs.store = &suppressStore{js: deps.JetStream, group: deps.Group, replicas: deps.Replicas}
	}
	names := entryNames(cfg.Handlers)
	for i, e := range cfg.Handlers {
		tokens, rank := patternRank(e.On)
		cond, _ := e.When.compile() // checked by validate
		ru := &rule{
			name: names[i], pattern: e.On, where: e.where(i), tokens: tokens, rank: rank, cond: cond,
			actions: newChain(e, cfg.Print, deps, out),
			counts:  rs.counts.entry(names[i]),
		}
		if x := e.Suppress; x != nil {
			s, _ := x.parse()
			s.entry = ru.name
			s.store = rs.store
			ru.suppress = s
		}
		if x := e.Limit; x != nil {
			ru.limit, _ = x.parse()
		}
		rs.rules = append(rs.rules, ru)
	}
	// Most specific pattern first; entries of one pattern in file order.
	slices.SortStableFunc(rs.rules, func(a, b *rule) int { return slices.Compare(a.rank, b.rank) })
	return rs, nil
}

// Register adds rs to r under each of its patterns. It checks them against
// those r has already, so it returns an error rather than letting r panic,
// and registers nothing if it fails.
func (rs *Rules) Register(r *processor.Router) error {
	existing := r.Patterns()
	var patterns []string
	for _, ru := range rs.rules {
		if slices.Contains(existing, ru.pattern) {
			return fmt.Errorf("handlers: %s: pattern %q is already registered", ru.where, ru.pattern)
		}
		if !slices.Contains(patterns, ru.pattern) {
			patterns = append(patterns, ru.pattern)
		}
	}
	for _, p := range patterns {
		r.Handle(p, rs)
	}
	return nil
}

// Entries returns the entries' names in evaluation order.
func (rs *Rules) Entries() []string {
	out := make([]string, len(rs.rules))
	for i, ru := range rs.rules {
		out[i] = ru.name
	}
	return out
}

// Counts returns the filtered, suppressed and limited counts of rs's
// entries, counted by this process.
func (rs *Rules) Counts() *Counts { return rs.counts }

// Process decodes the alert, finds the entry that takes it and applies it.
func (rs *Rules) Process(ctx context.Context, m *processor.Message) error {
	a, err := Decode(m)
	if err != nil {
		return err
	}
	ru, err := rs.take(ctx, m.Subject(), a)
	if err != nil {
		return err
	}
	if ru == nil {
		return processor.Permanent(fmt.Errorf("%w for subject %q: no entry's conditions hold (severity %s, status %s)", processor.ErrNoHandler, m.Subject(), a.Severity, statusOf(a)))
	}
	return ru.apply(ctx, rs.log, m, a)
}

// take returns the first rule, in evaluation order, that takes a, or nil. A
// resolved alert first ends the suppression window of every suppressing
// entry whose pattern and conditions other than status hold, so that the
// next firing alert acts again.
func (rs *Rules) take(ctx context.Context, subject string, a stream.Alert) (*rule, error) {
	resolved := a.Status == stream.StatusResolved
	var taken *rule
	for _, ru := range rs.rules {
		if !matchTokens(ru.tokens, subject) {
			continue
		}
		if resolved && ru.suppress != nil && ru.cond.matchExceptStatus(a) {
			if err := ru.suppress.end(ctx, a); err != nil {
				return nil, err
			}
		}
		if taken == nil && ru.cond.match(a) {
			taken = ru
			if !resolved {
				break
			}
		}
	}
	return taken, nil
}

// apply runs ru's part for the alert a it took: filter, suppress, wait for
// the limit, run the actions.
func (ru *rule) apply(ctx context.Context, log *slog.Logger, m *processor.Message, a stream.Alert) error {
	if len(ru.actions) == 0 {
		ru.counts.filtered.Add(1)
		log.Debug("alert filtered", "subject", m.Subject(), "seq", m.Sequence(), "entry", ru.name)
		return processor.ErrDrop
	}
	var held *claim
	if ru.suppress != nil && a.Status != stream.StatusResolved {
		c, err := ru.suppress.claim(ctx, m, a)
		if err != nil {
			return err
		}
		if c == nil {
			ru.counts.suppressed.Add(1)
			log.Debug("alert suppressed", "subject", m.Subject(), "seq", m.Sequence(), "entry", ru.name)
			return processor.ErrDrop
		}
		held = c
	}
	if ru.limit != nil {
		done, wait := ru.limit.acquire(holderOf(m))
		if wait > 0 {
			ru.counts.limited.Add(1)
			log.Debug("alert limited", "subject", m.Subject(), "seq", m.Sequence(), "entry", ru.name, "wait", wait)
			return processor.Defer(wait, "limit of entry "+ru.name)
		}
		defer done()
	}
	err := ru.actions.run(ctx, m, a)
	if err != nil && held != nil {
		// A failed action has not acted: free the window for the retry.
		if rerr := held.release(ctx); rerr != nil {
			log.Warn("suppression window not released after a failed action", "subject", m.Subject(), "seq", m.Sequence(), "entry", ru.name, "err", rerr)
		}
	}
	return err
}

// holderOf identifies a message across its deliveries.
func holderOf(m *processor.Message) string {
	return fmt.Sprintf("%s:%d", m.Stream(), m.Sequence())
}

func statusOf(a stream.Alert) string {
	if a.Status == "" {
		return stream.StatusFiring
	}
	return a.Status
}

// Severity levels, for at-least conditions.
var severityLevels = map[string]int{stream.SeverityInfo: 1, stream.SeverityWarning: 2, stream.SeverityError: 3, stream.SeverityCritical: 4}

// conditions is a When, compiled.
type conditions struct {
	severity    []string // any of; nil: any
	minLevel    int      // 0: any
	labels      [][2]string
	labelsMatch []labelRegexp
	status      string
}

type labelRegexp struct {
	label, expr string
	re          *regexp.Regexp
}

// minSeverityPrefix marks an at-least severity in YAML: severity: ">=error".
const minSeverityPrefix = ">="

func (w When) validate() error {
	_, err := w.compile()
	return err
}

func (w When) compile() (conditions, error) {
	var c conditions
	if len(w.Severity) > 0 && w.MinSeverity != "" {
		return c, fmt.Errorf("severity: give a set or a minimum (%q), not both", minSeverityPrefix+w.MinSeverity)
	}
	for _, s := range w.Severity {
		if _, ok := severityLevels[s]; !ok {
			return c, fmt.Errorf("severity %q: want info, warning, error or critical", s)
		}
		c.severity = append(c.severity, s)
	}
	if w.MinSeverity != "" {
		lvl, ok := severityLevels[w.MinSeverity]
		if !ok {
			return c, fmt.Errorf("severity %q: want %sinfo, %swarning, %serror or %scritical", minSeverityPrefix+w.MinSeverity, minSeverityPrefix, minSeverityPrefix, minSeverityPrefix, minSeverityPrefix)
		}
		c.minLevel = lvl
	}
	for _, k := range sortedKeys(w.Labels) {
		if k == "" {
			return c, fmt.Errorf("labels: empty label name")
		}
		c.labels = append(c.labels, [2]string{k, w.Labels[k]})
	}
	for _, k := range sortedKeys(w.LabelsMatch) {
		if k == "" {
			return c, fmt.Errorf("labels_match: empty label name")
		}
		var re *regexp.Regexp
		_, err := regexp.Compile(w.LabelsMatch[k])
		if err == nil {
			re, err = regexp.Compile("^(?:" + w.LabelsMatch[k] + ")$")
		}
		if err != nil {
			return c, fmt.Errorf("labels_match.%s: %q is not a regular expression: %v", k, w.LabelsMatch[k], strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		c.labelsMatch = append(c.labelsMatch, labelRegexp{label: k, expr: w.LabelsMatch[k], re: re})
	}
	switch w.Status {
	case "", stream.StatusFiring, stream.StatusResolved:
		c.status = w.Status
	default:
		return c, fmt.Errorf("status %q: want %q or %q", w.Status, stream.StatusFiring, stream.StatusResolved)
	}
	return c, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// match reports whether a meets every condition.
func (c conditions) match(a stream.Alert) bool {
	return (c.status == "" || c.status == statusOf(a)) && c.matchExceptStatus(a)
}

func (c conditions) matchExceptStatus(a stream.Alert) bool {
	if c.severity != nil && !slices.Contains(c.severity, a.Severity) {
		return false
	}
	if c.minLevel > 0 && severityLevels[a.Severity] < c.minLevel {
		return false
	}
	for _, l := range c.labels {
		if a.Labels[l[0]] != l[1] {
			return false
		}
	}
	for _, l := range c.labelsMatch {
		if !l.re.MatchString(a.Labels[l.label]) {
			return false
		}
	}
	return true
}

// Check is one condition of an entry and whether an alert meets it.
type Check struct {
	// Condition is the condition as written: `severity in [critical error]`.
	Condition string `json:"condition"`
	// Got is the alert's value.
	Got string `json:"got"`
	// OK reports whether the condition holds.
	OK bool `json:"ok"`
}

// checks evaluates every condition on a, for explain. It agrees with match.
func (c conditions) checks(a stream.Alert) []Check {
	var out []Check
	if c.status != "" {
		out = append(out, Check{Condition: "status " + c.status, Got: statusOf(a), OK: c.status == statusOf(a)})
	}
	if c.severity != nil {
		out = append(out, Check{Condition: fmt.Sprintf("severity in %v", c.severity), Got: a.Severity, OK: slices.Contains(c.severity, a.Severity)})
	}
	if c.minLevel > 0 {
		var min string
		for s, l := range severityLevels {
			if l == c.minLevel {
				min = s
			}
		}
		out = append(out, Check{Condition: "severity " + minSeverityPrefix + " " + min, Got: a.Severity, OK: severityLevels[a.Severity] >= c.minLevel})
	}
	for _, l := range c.labels {
		out = append(out, Check{Condition: fmt.Sprintf("label %s = %q", l[0], l[1]), Got: labelText(a, l[0]), OK: a.Labels[l[0]] == l[1]})
	}
	for _, l := range c.labelsMatch {
		out = append(out, Check{Condition: fmt.Sprintf("label %s =~ %q", l.label, l.expr), Got: labelText(a, l.label), OK: l.re.MatchString(a.Labels[l.label])})
	}
	return out
}

func labelText(a stream.Alert, k string) string {
	v, ok := a.Labels[k]
	if !ok {
		return "(missing)"
	}
	return fmt.Sprintf("%q", v)
}

// patternRank splits a valid pattern into its tokens and their ranks, as
// processor.Router orders patterns: lower is more specific.
func patternRank(p string) ([]string, []int8) {
	tokens := strings.Split(p, ".")
	rank := make([]int8, len(tokens))
	for i, t := range tokens {
		switch t {
		case "*":
			rank[i] = 1
		case ">":
			rank[i] = 2
		}
	}
	return tokens, rank
}

// matchTokens reports whether subject matches the pattern tokens.
func matchTokens(tokens []string, subject string) bool {
	for i, tok := range tokens {
		if subject == "" {
			return false
		}
		if tok == ">" {
			return true
		}
		head, rest, more := strings.Cut(subject, ".")
		if tok != "*" && tok != head {
			return false
		}
		if !more {
			return i == len(tokens)-1
		}
		subject = rest
	}
	return false
}
