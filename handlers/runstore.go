package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// The run records, in one place: the stream that keeps them, their subjects,
// writing them (while a Processor runs the rules) and reading them back
// (reactor runs, the console).

// RunsStream keeps a record of every run of every action but print (see
// Run): Limits retention by age and size, the oldest records going first
// (they are a record, not work), one subject per alert and group,
// RunsSubjectPrefix.<group>.<alert seq>.<run id>, so that an alert's runs
// are read without a scan. Rules create it when they start with an action
// to record, with RunsConfig's limits and the alert stream's replicas.
const RunsStream = "REACTOR_RUNS"

// RunsSubjectPrefix prefixes the subjects of RunsStream.
const RunsSubjectPrefix = "reactor.runs"

// RunsMaxBytesDefault bounds RunsStream unless RunsConfig.MaxBytes says
// otherwise: at ~1 KiB a record, about 250,000 runs.
const RunsMaxBytesDefault = 256 << 20

// HeaderRerunOf marks an alert put back into processing by `reactor runs
// rerun`: its value is the alert's sequence in the alert stream. Its runs
// are recorded under that alert (Run.Rerun), and it is never suppressed:
// a re-run asks for the actions again.
const HeaderRerunOf = "Reactor-Rerun-Of"

// runSubject is the subject of the record id of a run for the alert at seq,
// in group. A group name is a valid subject token (a durable consumer's
// name has no dot, wildcard or white space); an empty one is "_".
func runSubject(group string, seq uint64, id string) string {
	return RunsFilter(group, seq) + "." + id
}

// RunsFilter is the subject filter of the records of group ("" for every
// group) for the alert at seq (0 for every alert).
func RunsFilter(group string, seq uint64) string {
	g, s := "*", "*"
	if group != "" {
		g = group
	}
	if seq > 0 {
		s = strconv.FormatUint(seq, 10)
	}
	return RunsSubjectPrefix + "." + g + "." + s
}

// runsStreamConfig is RunsStream for cfg, replicated as the alert stream.
func runsStreamConfig(cfg RunsConfig, t stream.Topology) jetstream.StreamConfig {
	t = t.WithDefaults()
	maxAge := cfg.MaxAge
	if maxAge <= 0 {
		maxAge = t.MaxAge
	}
	maxBytes := cfg.MaxBytes
	if maxBytes <= 0 {
		maxBytes = RunsMaxBytesDefault
	}
	return jetstream.StreamConfig{
		Name:        RunsStream,
		Description: "reactor: a record of every action run, per group and alert",
		Subjects:    []string{RunsSubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      maxAge,
		MaxBytes:    maxBytes,
		Duplicates:  2 * time.Minute,
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
		AllowDirect: true,
	}
}

// ensureRunsStream creates RunsStream, or updates its limits.
func ensureRunsStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil // another process was first
		}
		if err != nil {
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if have.MaxAge == want.MaxAge && have.MaxBytes == want.MaxBytes && have.Replicas == want.Replicas {
		return nil
	}
	if _, err := js.UpdateStream(ctx, want); err != nil {
		return fmt.Errorf("update stream %s (max age %s, max bytes %d, replicas %d): %w", want.Name, want.MaxAge, want.MaxBytes, want.Replicas, err)
	}
	return nil
}

// recorder writes the run records of one group's process.
type recorder struct {
	js    jetstream.JetStream
	pub   *stream.Publisher
	group string
	host  string
	pid   int
}

func newRecorder(js jetstream.JetStream, group string) *recorder {
	host, _ := os.Hostname()
	return &recorder{
		js:    js,
		pub:   stream.NewPublisher(js, stream.PublisherConfig{}),
		group: group,
		host:  host,
		pid:   os.Getpid(),
	}
}

// write stores r and waits for the PubAck: a run that happened has its
// record before its alert is acknowledged. The record's id is its message
// id, so a record sent again is stored once.
func (rec *recorder) write(ctx context.Context, r Run) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode run record: %w", err)
	}
	msg := nats.NewMsg(runSubject(r.Group, r.AlertSeq, r.ID))
	msg.Data = data
	msg.Header.Set(nats.MsgIdHdr, r.ID)
	if r.traceparent != "" {
		msg.Header.Set("Traceparent", r.traceparent) // in the alert's trace; and none to make
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stream.RequestTimeoutDefault)
	defer cancel()
	if _, err := rec.pub.Publish(ctx, msg); err != nil {
		return fmt.Errorf("store run record %s: %w", r.ID, err)
	}
	return nil
}

// ErrRunNotFound means RunsStream holds no run with that id.
var ErrRunNotFound = errors.New("handlers: no run with that id")

// GetRun reads the run record id.
func GetRun(ctx context.Context, js jetstream.JetStream, id string) (Run, error) {
	if id == "" || strings.ContainsAny(id, ".*> \t\r\n") {
		return Run{}, fmt.Errorf("%w: %q", ErrRunNotFound, id)
	}
	s, err := js.Stream(ctx, RunsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return Run{}, fmt.Errorf("%w: %s (no run recorded yet)", ErrRunNotFound, id)
	}
	if err != nil {
		return Run{}, fmt.Errorf("stream %s: %w", RunsStream, err)
	}
	m, err := s.GetLastMsgForSubject(ctx, RunsFilter("", 0)+"."+id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Run{}, fmt.Errorf("%w: %s", ErrRunNotFound, id)
	}
	if err != nil {
		return Run{}, fmt.Errorf("read run %s: %w", id, err)
	}
	return parseRun(m.Data, m.Sequence)
}

// AlertRuns reads the records of the runs of group ("" for every group) for
// the alert at seq, oldest first.
func AlertRuns(ctx context.Context, js jetstream.JetStream, group string, seq uint64) ([]Run, error) {
	msgs, err := stream.ReadNewest(ctx, js, RunsStream, stream.NewestOptions{FilterSubjects: []string{RunsFilter(group, seq) + ".*"}})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("runs of alert %d: %w", seq, err)
	}
	out := make([]Run, 0, len(msgs.Msgs))
	for i := len(msgs.Msgs) - 1; i >= 0; i-- {
		r, err := parseRun(msgs.Msgs[i].Data, msgs.Msgs[i].Sequence)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// RunQuery selects run records for ListRuns. The zero value lists the
// newest RunsLimitDefault runs of every group.
type RunQuery struct {
	// Group restricts the list to one group's runs; AlertSeq to one
	// alert's (the server filters both by subject).
	Group    string
	AlertSeq uint64
	// Entry, AlertID, Failed (outcomes other than ok and suppressed) and
	// Since filter the records read.
	Entry   string
	AlertID string
	Failed  bool
	Since   time.Time
	// Before lists the runs stored before this sequence of RunsStream
	// (RunPage.Older continues a list). Defaults to the newest.
	Before uint64
	// Limit bounds the runs listed. Defaults to RunsLimitDefault.
	Limit int
	// Budget bounds the records read when a filter applies here rather than
	// on the server. Defaults to RunsBudgetDefault.
	Budget int
}

// Defaults of RunQuery.
const (
	RunsLimitDefault  = 50
	RunsBudgetDefault = 10_000
)

// RunPage is one page of ListRuns.
type RunPage struct {
	// Runs are newest first.
	Runs []Run `json:"runs"`
	// Older is RunQuery.Before of the next page; 0 when there is none.
	Older uint64 `json:"older,omitempty"`
	// Limited reports that the page stopped at the budget before it was
	// full: older records may match.
	Limited bool `json:"limited,omitempty"`
}

// ListRuns lists the run records q selects, newest first.
func ListRuns(ctx context.Context, js jetstream.JetStream, q RunQuery) (RunPage, error) {
	if q.Limit <= 0 {
		q.Limit = RunsLimitDefault
	}
	if q.Budget <= 0 {
		q.Budget = RunsBudgetDefault
	}
	opts := stream.NewestOptions{Before: q.Before, Want: q.Limit, Since: q.Since}
	if q.Group != "" || q.AlertSeq > 0 {
		opts.FilterSubjects = []string{RunsFilter(q.Group, q.AlertSeq) + ".*"}
	}
	if q.Entry != "" || q.AlertID != "" || q.Failed {
		opts.Budget = q.Budget
		opts.Matches = func(m stream.StoredMsg) bool {
			r, err := parseRun(m.Data, m.Sequence)
			return err == nil && (q.Entry == "" || r.Entry == q.Entry) && (q.AlertID == "" || r.AlertID == q.AlertID) &&
				(!q.Failed || r.Outcome != RunOK && r.Outcome != RunSuppressed)
		}
	}
	page, err := stream.ReadNewest(ctx, js, RunsStream, opts)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return RunPage{}, nil
	}
	if err != nil {
		return RunPage{}, fmt.Errorf("list runs: %w", err)
	}
	out := RunPage{Runs: make([]Run, 0, len(page.Msgs)), Older: page.Older, Limited: page.Limited}
	for _, m := range page.Msgs {
		r, err := parseRun(m.Data, m.Sequence)
		if err != nil {
			return out, err
		}
		out.Runs = append(out.Runs, r)
	}
	return out, nil
}

func parseRun(data []byte, seq uint64) (Run, error) {
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return Run{}, fmt.Errorf("run record %d: %w", seq, err)
	}
	r.Seq = seq
	return r, nil
}

// Rerunning is a re-run put into processing by Rerun.
type Rerunning struct {
	// AlertSeq is the alert's sequence in the alert stream; Group the
	// group that handles it again.
	AlertSeq uint64 `json:"alert_seq"`
	Group    string `json:"group"`
	// Subject is the alert's subject; StoredSubject the group's redrive
	// subject the copy was stored on, at Seq of the alert stream.
	Subject       string `json:"subject"`
	StoredSubject string `json:"stored_subject"`
	Seq           uint64 `json:"seq"`
}

// Rerun asks group to run its current rules for the alert at seq of t's
// alert stream again, durably: a copy of the alert (payload and headers)
// is stored on the group's redrive subject, which only that group's
// consumer sees, with a new message id and HeaderRerunOf, as a redrive of
// a dead letter is. The group handles it like any alert (retried, or
// dead-lettered), never suppressed, and records its runs under the
// original alert (Run.Rerun).
func Rerun(ctx context.Context, js jetstream.JetStream, t stream.Topology, group string, seq uint64) (Rerunning, error) {
	t = t.WithDefaults()
	if group == "" {
		return Rerunning{}, errors.New("handlers: rerun: a group is required")
	}
	s, err := js.Stream(ctx, t.Alerts)
	if err != nil {
		return Rerunning{}, fmt.Errorf("rerun: stream %s: %w", t.Alerts, err)
	}
	if _, err := stream.ReadGroup(ctx, js, t, group); err != nil {
		return Rerunning{}, fmt.Errorf("rerun: %w", err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		st := s.CachedInfo().State
		return Rerunning{}, fmt.Errorf("rerun: no alert %d in %s (first %d, last %d)", seq, t.Alerts, st.FirstSeq, st.LastSeq)
	}
	if err != nil {
		return Rerunning{}, fmt.Errorf("rerun: read alert %d: %w", seq, err)
	}
	subject := m.Subject
	if rest, ok := strings.CutPrefix(subject, t.RedriveSubject(group, "")); ok {
		subject = rest // a copy made for this group already
	}
	if of, err := strconv.ParseUint(m.Header.Get(HeaderRerunOf), 10, 64); err == nil && of > 0 {
		seq = of // a re-run of a re-run is a re-run of the alert
	}
	msg := nats.NewMsg(t.RedriveSubject(group, subject))
	msg.Data = m.Data
	for k, vs := range m.Header {
		if !strings.HasPrefix(k, "Nats-") {
			msg.Header[k] = vs
		}
	}
	msg.Header.Set(nats.MsgIdHdr, "rerun-"+t.Alerts+"-"+strconv.FormatUint(seq, 10)+"-"+stream.NewID())
	msg.Header.Set(HeaderRerunOf, strconv.FormatUint(seq, 10))
	ack, err := stream.NewPublisher(js, stream.PublisherConfig{}).Publish(ctx, msg)
	if err != nil {
		return Rerunning{}, fmt.Errorf("rerun alert %d: %w", seq, err)
	}
	return Rerunning{AlertSeq: seq, Group: group, Subject: subject, StoredSubject: msg.Subject, Seq: ack.Sequence}, nil
}

// LastRuns reads the newest record of group's runs for each alert of seqs,
// one request each (for a list's page of alerts); an alert without a run
// has no entry in the map.
func LastRuns(ctx context.Context, js jetstream.JetStream, group string, seqs []uint64) (map[uint64]Run, error) {
	out := make(map[uint64]Run, len(seqs))
	s, err := js.Stream(ctx, RunsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("stream %s: %w", RunsStream, err)
	}
	for _, seq := range seqs {
		m, err := s.GetLastMsgForSubject(ctx, RunsFilter(group, seq)+".*")
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("last run of alert %d: %w", seq, err)
		}
		r, err := parseRun(m.Data, m.Sequence)
		if err != nil {
			return out, err
		}
		out[seq] = r
	}
	return out, nil
}
