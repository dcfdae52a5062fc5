package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerSpec is the durable pull consumer of one group on the Alerts
// stream. The processor derives it from its own Config so the two cannot
// drift apart.
type ConsumerSpec struct {
	// Name of the durable consumer (the group). Required.
	Name string
	// AckWait before an unacknowledged delivery is redelivered.
	AckWait time.Duration
	// MaxDeliver bounds deliveries; the processor dead-letters on the last.
	MaxDeliver int
	// MaxAckPending bounds unacknowledged deliveries; at least the workers.
	MaxAckPending int
	// FilterSubjects restricts the group to some alert subjects, plus the
	// group's redrive subject. Empty (or the topology's subjects), the
	// group takes the whole stream:
	// every alert subject, and the alerts redriven for every group, which
	// the processor acks unhandled when they are another group's (see
	// Topology.RedrivenForOther). A consumer with several filters costs
	// the server a subject match per delivery; one without none.
	FilterSubjects []string
	// Replicas of the consumer state; 0 follows the stream.
	Replicas int
	// Start is where the group starts when its consumer is created. An
	// existing consumer keeps its position. Defaults to StartAuto.
	Start Start
}

// StartPolicy says where a new group starts in the Alerts stream.
type StartPolicy int

const (
	// StartAuto is StartAll for the first group on the stream (alerts
	// published before any `reactor run` are not skipped), StartNew for a
	// group added to a stream that already has groups (a new group does
	// not run the whole retained history through its handlers unasked).
	StartAuto StartPolicy = iota
	// StartAll starts at the oldest alert kept.
	StartAll
	// StartNew starts with the next alert stored.
	StartNew
	// StartSeq starts at a stream sequence (Start.Seq).
	StartSeq
	// StartTime starts with the alerts stored at or after Start.Time.
	StartTime
)

// Start is where a new group's consumer starts.
type Start struct {
	Policy StartPolicy
	Seq    uint64    // for StartSeq
	Time   time.Time // for StartTime
	// Why, if set, says why this start was chosen; status shows it.
	Why string
}

// StartDefault is the start of a new group unless told otherwise.
const StartDefault = "auto"

// ParseStart reads a start position: auto, all, new, a duration back from
// now ("24h"), an RFC 3339 time, or "seq:N".
func ParseStart(s string, now time.Time) (Start, error) {
	switch s {
	case "", "auto":
		return Start{Policy: StartAuto}, nil
	case "all":
		return Start{Policy: StartAll}, nil
	case "new":
		return Start{Policy: StartNew}, nil
	}
	if n, ok := strings.CutPrefix(s, "seq:"); ok {
		seq, err := strconv.ParseUint(n, 10, 64)
		if err != nil || seq == 0 {
			return Start{}, fmt.Errorf("start %q: want seq:N with N >= 1", s)
		}
		return Start{Policy: StartSeq, Seq: seq}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return Start{Policy: StartTime, Time: now.Add(-d).UTC()}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return Start{Policy: StartTime, Time: t.UTC()}, nil
	}
	return Start{}, fmt.Errorf("start %q: want auto, all, new, a duration (24h), an RFC 3339 time or seq:N", s)
}

// String is the start as status shows it.
func (s Start) String() string {
	var out string
	switch s.Policy {
	case StartAuto:
		out = "auto"
	case StartAll:
		out = "all"
	case StartNew:
		out = "new"
	case StartSeq:
		out = "seq:" + strconv.FormatUint(s.Seq, 10)
	case StartTime:
		out = s.Time.UTC().Format(time.RFC3339)
	}
	if s.Why != "" {
		out += " (" + s.Why + ")"
	}
	return out
}

// metaStart is the consumer metadata key that records how a group's start
// was chosen.
const metaStart = "reactor_start"

// consumerConfig is the consumer configuration spec asks for, without its
// start.
func (t Topology) consumerConfig(spec ConsumerSpec) jetstream.ConsumerConfig {
	t = t.WithDefaults()
	var filters []string
	if len(spec.FilterSubjects) > 0 && !slices.Equal(spec.FilterSubjects, t.Subjects) {
		filters = append(slices.Clone(spec.FilterSubjects), t.redriveFilter(spec.Name)+".>")
	}
	return jetstream.ConsumerConfig{
		Durable:        spec.Name,
		Description:    "reactor processing group " + spec.Name,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        spec.AckWait,
		MaxDeliver:     spec.MaxDeliver,
		MaxAckPending:  spec.MaxAckPending,
		Replicas:       spec.Replicas,
		FilterSubjects: filters,
	}
}

// EnsureConsumer creates the durable consumer of spec's group on t's Alerts
// stream, starting where spec.Start says, or updates an existing one to spec
// while keeping its position.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, t Topology, spec ConsumerSpec) (jetstream.Consumer, error) {
	t = t.WithDefaults()
	if spec.Name == "" {
		return nil, errors.New("stream: consumer needs a name")
	}
	want := t.consumerConfig(spec)
	for range 2 {
		have, err := js.Consumer(ctx, t.Alerts, spec.Name)
		switch {
		case err == nil:
			hc := have.CachedInfo().Config
			want.DeliverPolicy, want.OptStartSeq, want.OptStartTime, want.Metadata = hc.DeliverPolicy, hc.OptStartSeq, hc.OptStartTime, hc.Metadata
			// An update without PauseUntil would resume a paused group:
			// keep the pause an operator set while its processes restart.
			want.PauseUntil = hc.PauseUntil
			if consumerUpToDate(hc, want) {
				return have, nil
			}
			c, err := js.UpdateConsumer(ctx, t.Alerts, want)
			if err != nil {
				return nil, fmt.Errorf("update consumer %q on %s: %w", spec.Name, t.Alerts, err)
			}
			return c, nil
		case !errors.Is(err, jetstream.ErrConsumerNotFound):
			return nil, fmt.Errorf("look up consumer %q on %s: %w", spec.Name, t.Alerts, err)
		}
		start, err := resolveStart(ctx, js, t, spec)
		if err != nil {
			return nil, err
		}
		start.apply(&want)
		c, err := js.CreateConsumer(ctx, t.Alerts, want)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			continue // another process of the group created it meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("create consumer %q on %s: %w", spec.Name, t.Alerts, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("ensure consumer %q on %s: created and deleted concurrently", spec.Name, t.Alerts)
}

func consumerUpToDate(have, want jetstream.ConsumerConfig) bool {
	return have.AckWait == want.AckWait && have.MaxDeliver == want.MaxDeliver &&
		have.MaxAckPending == want.MaxAckPending && slices.Equal(have.FilterSubjects, want.FilterSubjects) &&
		have.FilterSubject == "" && have.Description == want.Description
}

// resolveStart turns StartAuto into StartAll or StartNew: all for the first
// group of the stream, new when it has groups already.
func resolveStart(ctx context.Context, js jetstream.JetStream, t Topology, spec ConsumerSpec) (Start, error) {
	start := spec.Start
	if start.Policy != StartAuto {
		return start, nil
	}
	s, err := js.Stream(ctx, t.Alerts)
	if err != nil {
		return start, fmt.Errorf("stream %s: %w", t.Alerts, err)
	}
	groups, err := durables(ctx, s)
	if err != nil {
		return start, err
	}
	groups = slices.DeleteFunc(groups, func(n string) bool { return n == spec.Name })
	if len(groups) == 0 {
		return Start{Policy: StartAll, Why: "auto: first group"}, nil
	}
	return Start{Policy: StartNew, Why: "auto: the stream has groups"}, nil
}

// durables names the durable consumers of s: its groups.
func durables(ctx context.Context, s jetstream.Stream) ([]string, error) {
	var out []string
	infos := s.ListConsumers(ctx)
	for info := range infos.Info() {
		if info.Config.Durable != "" {
			out = append(out, info.Name)
		}
	}
	if err := infos.Err(); err != nil {
		return nil, fmt.Errorf("consumers of %s: %w", s.CachedInfo().Config.Name, err)
	}
	return out, nil
}

func (s Start) apply(cc *jetstream.ConsumerConfig) {
	switch s.Policy {
	case StartNew:
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	case StartSeq:
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = s.Seq
	case StartTime:
		cc.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		at := s.Time
		cc.OptStartTime = &at
	default:
		cc.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	cc.Metadata = map[string]string{metaStart: s.String()}
}

// startOf reads back the start a consumer was created with.
func startOf(cc jetstream.ConsumerConfig) string {
	if s := cc.Metadata[metaStart]; s != "" {
		return s
	}
	switch cc.DeliverPolicy {
	case jetstream.DeliverNewPolicy:
		return "new"
	case jetstream.DeliverByStartSequencePolicy:
		return "seq:" + strconv.FormatUint(cc.OptStartSeq, 10)
	case jetstream.DeliverByStartTimePolicy:
		if cc.OptStartTime != nil {
			return cc.OptStartTime.UTC().Format(time.RFC3339)
		}
	case jetstream.DeliverLastPolicy, jetstream.DeliverLastPerSubjectPolicy:
		return "last"
	}
	return "all"
}
