package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// Rules is a handlers Config compiled: its entries in evaluation order, each
// with its conditions, suppression, limits, actions and counts. Build it
// with NewRules and give it to a processor (processor.New) or a replay
// (processor.Replay) as their handler.
//
// Rules is a processor.Mux: the processor asks it which entry takes each
// alert, and that entry's name is the one its logs, metrics and dead
// letters give. It is a processor.Starter too: while a Processor runs it,
// its suppression windows and concurrency slots are the group's (shared
// with the group's other processes, in SuppressBucket and LeaseBucket) and
// its counts are added up in CountsStream. Without Start, as in a replay,
// nothing is suppressed, and the slots and the counts stay in the process.
type Rules struct {
	rules  []*rule // in evaluation order
	log    *slog.Logger
	counts *Counts
	runs   RunsConfig
	onRun  func(Run)

	store    atomic.Pointer[groupBucket] // set by Start; nil: suppression off
	leases   atomic.Pointer[groupBucket] // set by Start; nil: limits of this process alone
	recorder atomic.Pointer[recorder]    // set by Start when an action is recorded
	started  atomic.Bool
	replay   atomic.Bool // set by RecordReplay: the runs are a replay's
}

// rule is one entry, compiled.
type rule struct {
	name     string
	pattern  processor.Pattern
	where    string // "line 4" or "handlers[3]"
	cond     conditions
	suppress *suppressor // nil: none
	limit    *limiter    // nil: none
	actions  []action    // empty: filter
	recorded bool        // an action leaves run records
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
	rs := &Rules{log: deps.Logger, counts: newCounts(), runs: cfg.Runs, onRun: deps.OnRun}
	names := entryNames(cfg.Handlers)
	for i, e := range cfg.Handlers {
		pattern, _ := processor.ParsePattern(e.On) // checked by validate
		cond, _ := e.When.compile()
		ru := &rule{
			name: names[i], pattern: pattern, where: e.where(i), cond: cond,
			actions: newActions(names[i], e, cfg.Print, deps, out),
			counts:  rs.counts.entry(names[i]),
		}
		ru.recorded = slices.ContainsFunc(ru.actions, func(a action) bool { return a.kind() != "print" })
		if x := e.Suppress; x != nil {
			ru.suppress, _ = x.parse()
			ru.suppress.entry = ru.name
		}
		if x := e.Limit; x != nil {
			ru.limit, _ = x.parse()
			if c := ru.limit.conc; c != nil {
				c.entry = ru.name
			}
		}
		rs.rules = append(rs.rules, ru)
	}
	// Most specific pattern first; entries of one pattern in file order.
	slices.SortStableFunc(rs.rules, func(a, b *rule) int { return a.pattern.Compare(b.pattern) })
	return rs, nil
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

// Start binds rs to the group g: from now on its suppression windows and
// concurrency slots are the group's, every run of an action is recorded in
// RunsStream (created or updated to rs's RunsConfig), and every
// countsFlushEvery (and once more when stopped) it adds what it counted to
// CountsStream. A Rules serves one group: a second Start fails. A
// Processor calls Start itself (processor.Starter); call it by hand to read
// a group's windows and slots with Explain.
func (rs *Rules) Start(ctx context.Context, g processor.Group) (stop func(), err error) {
	if !rs.started.CompareAndSwap(false, true) {
		return nil, errors.New("handlers: rules started twice: a Rules serves one group")
	}
	st := newSuppressStore(g)
	rs.store.Store(st)
	rs.leases.Store(newLeaseStore(g))
	for _, ru := range rs.rules {
		bindGroup(ru.actions, g.Name)
	}
	if slices.ContainsFunc(rs.rules, func(ru *rule) bool { return ru.recorded }) {
		if err := ensureRunsStream(ctx, g.JetStream, runsStreamConfig(rs.runs, g.Topology)); err != nil {
			return nil, fmt.Errorf("handlers: run records: %w", err)
		}
		rs.recorder.Store(newRecorder(g.JetStream, g.Name))
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		rs.publishCounts(ctx, st, countsFlushEvery)
	}()
	return func() {
		cancel()
		<-done
	}, nil
}

// RecordReplay stores every run of rs's actions in RunsStream under group,
// each marked Replay, as a started Rules stores its group's, and binds
// nothing else: no suppression window, no group-wide limit (replaying is
// asking for the actions again). `reactor replay` calls it. It fails on
// rules already started or recording.
func (rs *Rules) RecordReplay(ctx context.Context, js jetstream.JetStream, t stream.Topology, group string) error {
	if !rs.started.CompareAndSwap(false, true) {
		return errors.New("handlers: rules started already: they record their group's runs")
	}
	rs.replay.Store(true)
	if !slices.ContainsFunc(rs.rules, func(ru *rule) bool { return ru.recorded }) {
		return nil
	}
	if err := ensureRunsStream(ctx, js, runsStreamConfig(rs.runs, t)); err != nil {
		return fmt.Errorf("handlers: run records: %w", err)
	}
	rs.recorder.Store(newRecorder(js, group))
	return nil
}

// Entry says which entry takes a (the decision Route makes), and whether
// it acts on it: an entry without actions drops it on purpose (filtered).
// ok is false when no entry takes it.
func (rs *Rules) Entry(a stream.Alert) (name string, acts, ok bool) {
	ru := rs.decide(a.Subject, a, nil).taker
	if ru == nil {
		return "", false, false
	}
	return ru.name, len(ru.actions) > 0, true
}

// Process runs the entry that takes m's alert (see Route).
func (rs *Rules) Process(ctx context.Context, m *processor.Message) error {
	h, _ := rs.Route(m)
	return h.Process(ctx, m)
}

// Route decodes m's alert and returns the entry that takes it, the first in
// evaluation order whose pattern matches its subject and whose conditions
// all hold, with the handler that applies the entry: filter, suppress, wait
// for a limit, run the actions. A payload that is not an alert, or an alert
// no entry takes, gets a handler that returns the permanent reason.
func (rs *Rules) Route(m *processor.Message) (processor.Handler, string) {
	a, err := Decode(m)
	if err != nil {
		return failure{err}, ""
	}
	d := rs.decide(m.Subject(), a, nil)
	if d.taker == nil {
		return failure{processor.Permanent(fmt.Errorf("%w for subject %q: no entry's conditions hold (severity %s, status %s)",
			processor.ErrNoHandler, m.Subject(), a.Severity, statusOf(a)))}, ""
	}
	return &taken{rs: rs, d: d, a: a}, d.taker.name
}

// decision is what the rules decide for one alert: the entry that takes
// it, nil if none, and for a resolved alert the suppressing entries whose
// window it ends (those whose pattern and conditions other than status
// hold for it), so that the next firing alert acts again.
type decision struct {
	taker *rule
	ends  []*rule
}

// decide evaluates the rules on a, published on subject: the one decision
// Route acts on and Explain shows. visit, if not nil, sees every entry
// whose pattern matches, in evaluation order up to the one that takes a,
// and whether it does.
func (rs *Rules) decide(subject string, a stream.Alert, visit func(ru *rule, takes bool)) decision {
	resolved := a.Status == stream.StatusResolved
	var d decision
	for _, ru := range rs.rules {
		if !ru.pattern.Match(subject) {
			continue
		}
		if resolved && ru.suppress != nil && ru.cond.matchExceptStatus(a) {
			d.ends = append(d.ends, ru)
		}
		if d.taker != nil {
			continue
		}
		takes := ru.cond.match(a)
		if visit != nil {
			visit(ru, takes)
		}
		if takes {
			d.taker = ru
			if !resolved {
				break
			}
		}
	}
	return d
}

// taken is an alert with the decision of the rules: the handler Route
// returns.
type taken struct {
	rs *Rules
	d  decision
	a  stream.Alert
}

// Process ends the windows a resolved alert ends, then applies the entry
// that took it.
func (t *taken) Process(ctx context.Context, m *processor.Message) error {
	store := t.rs.store.Load()
	for _, ru := range t.d.ends {
		if err := ru.suppress.end(ctx, store, t.a); err != nil {
			return err
		}
	}
	return t.rs.apply(ctx, t.d.taker, store, t.rs.leases.Load(), m, t.a)
}

// failure is the handler of a message no entry takes: it returns why.
type failure struct{ err error }

func (f failure) Process(context.Context, *processor.Message) error { return f.err }

// apply runs ru's part for the alert a it took: filter, suppress, wait for
// the limit, run the actions.
func (rs *Rules) apply(ctx context.Context, ru *rule, store, leases *groupBucket, m *processor.Message, a stream.Alert) error {
	if len(ru.actions) == 0 {
		ru.counts.filtered.Add(1)
		rs.log.Debug("alert filtered", "subject", m.Subject(), "seq", m.Sequence(), "entry", ru.name)
		return processor.ErrDrop
	}
	// A re-run asks for the actions again: it is nobody's repeat.
	var held *claim
	if ru.suppress != nil && a.Status != stream.StatusResolved && m.Header(HeaderRerunOf) == "" {
		c, err := ru.suppress.claim(ctx, store, m, a)
		if err != nil {
			return err
		}
		if c.repeatOf != "" {
			ru.counts.suppressed.Add(1)
			rs.log.Debug("alert suppressed", "subject", m.Subject(), "seq", m.Sequence(), "entry", ru.name)
			if ru.recorded {
				r := rs.newRun(ru, m, a, -1, nil)
				r.Outcome = RunSuppressed
				r.Error = fmt.Sprintf("a repeat within the suppression window of key %q, opened by alert %s", c.rendered, c.repeatOf)
				rs.record(ctx, r)
			}
			return processor.ErrDrop
		}
		held = c
	}
	if ru.limit != nil {
		// The window the alert holds stays its own while it waits: its next
		// delivery finds it (see suppressor.claim).
		run, wait, err := ru.limit.acquire(ctx, leases, m, a)
		if err != nil {
			return err
		}
		if wait > 0 {
			ru.counts.limited.Add(1)
			rs.log.Debug("alert limited", "subject", m.Subject(), "seq", m.Sequence(), "entry", ru.name, "wait", wait)
			return processor.Defer(wait, "limit of entry "+ru.name)
		}
		defer func() {
			if err := run.done(); err != nil {
				rs.log.Warn("concurrency slot not freed", "subject", m.Subject(), "seq", m.Sequence(), "entry", ru.name, "err", err)
			}
		}()
		ctx = run.ctx
	}
	err := rs.runActions(ctx, ru, m, a)
	if err != nil && held != nil {
		// A failed action has not acted: free the window for the retry.
		if rerr := held.release(ctx); rerr != nil {
			rs.log.Warn("suppression window not released after a failed action", "subject", m.Subject(), "seq", m.Sequence(), "entry", ru.name, "err", rerr)
		}
	}
	return err
}

// runActions runs ru's actions in order on the alert a of m, stopping at
// the first that fails, and records each run but a print's before it
// returns: before the alert is acknowledged.
func (rs *Rules) runActions(ctx context.Context, ru *rule, m *processor.Message, a stream.Alert) error {
	for i, act := range ru.actions {
		if act.kind() == "print" {
			if err := act.run(ctx, m, a, nil); err != nil {
				return err
			}
			continue
		}
		r := rs.newRun(ru, m, a, i, act)
		start := time.Now()
		err := act.run(ctx, m, a, &r)
		r.Started, r.DurationSeconds = start.UTC(), time.Since(start).Seconds()
		r.Outcome = runOutcome(ctx, err)
		if err != nil {
			r.Error = errorText(err)
		}
		rs.record(ctx, r)
		if err != nil {
			return err
		}
	}
	return nil
}

// newRun is the record of ru's action i (nil for a decision without one) for
// the alert a of m.
func (rs *Rules) newRun(ru *rule, m *processor.Message, a stream.Alert, i int, act action) Run {
	r := Run{
		ID:          stream.NewID(),
		Entry:       ru.name,
		ActionIndex: i,
		AlertStream: m.Stream(),
		AlertSeq:    m.Sequence(),
		AlertID:     a.ID,
		Subject:     m.Subject(),
		Delivered:   m.Delivered(),
		Started:     time.Now().UTC(),
		outputLimit: int(rs.runs.Output),
		traceparent: stream.Traceparent(m.Headers()),
	}
	if act != nil {
		r.Action = act.kind()
	}
	if of, err := strconv.ParseUint(m.Header(HeaderRerunOf), 10, 64); err == nil && of > 0 {
		r.AlertSeq, r.Rerun, r.RerunSeq = of, true, m.Sequence()
	}
	return r
}

// record reports r to Deps.OnRun and, while the rules are started, stores
// it. A record the server refuses is logged: the action ran, and running it
// again for want of its record would do its effect twice.
func (rs *Rules) record(ctx context.Context, r Run) {
	rec := rs.recorder.Load()
	if rec != nil {
		r.Group, r.Host, r.PID = rec.group, rec.host, rec.pid
	}
	r.Replay = rs.replay.Load()
	if rs.onRun != nil {
		rs.onRun(r)
	}
	if rec == nil {
		return
	}
	if err := rec.write(ctx, r); err != nil {
		rs.log.Error("run record not stored", "entry", r.Entry, "action", r.Action, "seq", r.AlertSeq, "run", r.ID, "outcome", r.Outcome, "err", err)
	}
}

// runOutcome is what a run's error says of it.
func runOutcome(ctx context.Context, err error) string {
	var perm *processor.PermanentError
	switch {
	case err == nil:
		return RunOK
	case errors.As(err, &perm):
		return RunPermanent
	case errors.Is(err, context.DeadlineExceeded):
		return RunTimeout
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return RunCanceled
	}
	return RunFailed
}

// errorText is err's text for a record, as the dead letter has it.
func errorText(err error) string {
	if pe, ok := errors.AsType[*processor.PanicError](err); ok {
		return err.Error() + "\n" + string(pe.Stack)
	}
	return err.Error()
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
