package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Topology names and sizes reactor's three streams:
//
//   - History (Limits retention, the alert subjects): every alert, kept for
//     MaxAge. Replay reads it.
//   - Work (WorkQueue retention, sources History): the backlog. A durable
//     pull consumer per group; an acked alert is deleted.
//   - DLQ (Limits retention, DLQPrefix.>): dead letters with their reason.
//
// Work sources History rather than the other way round: a WorkQueue stream
// cannot be replayed, and sourcing history from it would drain it.
type Topology struct {
	// History is the history stream. Defaults to "ALERTS".
	History string
	// Subjects are the subjects History captures. Defaults to ["alerts.>"].
	Subjects []string
	// Work is the work-queue stream. Defaults to "ALERTS_WORK".
	Work string
	// DLQ is the dead-letter stream. Defaults to "ALERTS_DLQ".
	DLQ string
	// DLQPrefix prefixes the original subject of a dead letter:
	// "alerts.cpu" is dead-lettered on "dlq.alerts.cpu". Defaults to "dlq".
	DLQPrefix string
	// MaxAge is the replay horizon: how long History keeps alerts.
	// Defaults to 7 days.
	MaxAge time.Duration
	// DLQMaxAge is how long dead letters are kept. Defaults to 0: until
	// purged.
	DLQMaxAge time.Duration
	// DuplicateWindow is how long a Nats-Msg-Id is remembered for
	// deduplication. Defaults to 2 minutes.
	DuplicateWindow time.Duration
	// Replicas for every stream (1, 3 or 5 on a cluster). Defaults to 1.
	Replicas int
	// Storage is the stream storage. Defaults to file.
	Storage jetstream.StorageType
}

// WithDefaults returns t with every zero field set to its default.
func (t Topology) WithDefaults() Topology {
	if t.History == "" {
		t.History = "ALERTS"
	}
	if len(t.Subjects) == 0 {
		t.Subjects = []string{"alerts.>"}
	}
	if t.Work == "" {
		t.Work = "ALERTS_WORK"
	}
	if t.DLQ == "" {
		t.DLQ = "ALERTS_DLQ"
	}
	if t.DLQPrefix == "" {
		t.DLQPrefix = "dlq"
	}
	if t.MaxAge == 0 {
		t.MaxAge = 7 * 24 * time.Hour
	}
	if t.DuplicateWindow == 0 {
		t.DuplicateWindow = 2 * time.Minute
	}
	if t.Replicas == 0 {
		t.Replicas = 1
	}
	return t
}

// DLQSubject is the subject a dead letter of subject is stored on.
func (t Topology) DLQSubject(subject string) string {
	return t.WithDefaults().DLQPrefix + "." + subject
}

func (t Topology) streamConfigs() []jetstream.StreamConfig {
	t = t.WithDefaults()
	return []jetstream.StreamConfig{
		{
			Name:        t.History,
			Description: "reactor: alert history, read by replay",
			Subjects:    t.Subjects,
			Retention:   jetstream.LimitsPolicy,
			Storage:     t.Storage,
			MaxAge:      t.MaxAge,
			Duplicates:  t.DuplicateWindow,
			Replicas:    t.Replicas,
			Discard:     jetstream.DiscardOld,
		},
		{
			Name:        t.Work,
			Description: "reactor: work queue of alerts to handle, sourced from " + t.History,
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     t.Storage,
			// No duplicate window: nothing publishes to Work, and sourcing
			// skips what it copied already by the history's sequence. A
			// window would keep every id of the last 2 minutes a second
			// time (about 125 MB per million alerts) for nothing.
			Replicas: t.Replicas,
			Sources:  []*jetstream.StreamSource{{Name: t.History}},
		},
		{
			Name:        t.DLQ,
			Description: "reactor: dead letters, with the reason in their headers",
			Subjects:    []string{t.DLQPrefix + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     t.Storage,
			MaxAge:      t.DLQMaxAge,
			Duplicates:  t.DuplicateWindow,
			Replicas:    t.Replicas,
		},
	}
}

// ErrIncompatible means an existing stream or consumer differs from the
// topology in a setting the server cannot change in place.
var ErrIncompatible = errors.New("stream: existing setting cannot be changed in place")

// EnsureStreams creates the three streams, or updates them to t where the
// server allows it. A setting that cannot change in place (retention,
// storage, the sources of Work) is reported with ErrIncompatible, naming the
// stream, the setting and what to do.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, t Topology) error {
	for _, want := range t.streamConfigs() {
		if err := ensureStream(ctx, js, want); err != nil {
			return err
		}
	}
	return nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, want); err != nil {
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if err := compatibleStream(have, want); err != nil {
		return err
	}
	if streamUpToDate(have, want) {
		return nil
	}
	if _, err := js.UpdateStream(ctx, want); err != nil {
		return fmt.Errorf("update stream %s (replicas %d→%d, max age %s→%s): %w",
			want.Name, have.Replicas, want.Replicas, have.MaxAge, want.MaxAge, err)
	}
	return nil
}

func compatibleStream(have, want jetstream.StreamConfig) error {
	fix := fmt.Sprintf("delete it (nats stream rm %s, losing its messages) or configure other stream names", want.Name)
	switch {
	case have.Retention != want.Retention:
		return fmt.Errorf("%w: stream %s has retention %s, reactor needs %s: %s",
			ErrIncompatible, want.Name, have.Retention, want.Retention, fix)
	case have.Storage != want.Storage:
		return fmt.Errorf("%w: stream %s has %s storage, reactor is configured for %s: %s",
			ErrIncompatible, want.Name, have.Storage, want.Storage, fix)
	case len(want.Sources) > 0 && !sameSources(have.Sources, want.Sources):
		return fmt.Errorf("%w: stream %s does not source exactly %s: %s",
			ErrIncompatible, want.Name, want.Sources[0].Name, fix)
	}
	return nil
}

func sameSources(have, want []*jetstream.StreamSource) bool {
	return slices.EqualFunc(have, want, func(a, b *jetstream.StreamSource) bool {
		return a.Name == b.Name && a.FilterSubject == b.FilterSubject
	})
}

func streamUpToDate(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) &&
		have.MaxAge == want.MaxAge &&
		have.Duplicates == want.Duplicates &&
		have.Replicas == want.Replicas &&
		have.Description == want.Description
}

// ConsumerSpec is the durable pull consumer of one group on Work. The
// processor derives it from its own Config so the two cannot drift apart.
type ConsumerSpec struct {
	// Name of the durable consumer (the group). Required.
	Name string
	// AckWait before an unacknowledged delivery is redelivered.
	AckWait time.Duration
	// MaxDeliver bounds deliveries; the processor dead-letters on the last.
	MaxDeliver int
	// MaxAckPending bounds unacknowledged deliveries; at least the workers.
	MaxAckPending int
	// FilterSubjects restricts the group to some alert subjects.
	FilterSubjects []string
	// Replicas of the consumer state; 0 follows the stream.
	Replicas int
}

// ConsumerConfig is the consumer configuration spec asks for.
func (spec ConsumerSpec) ConsumerConfig() jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:       spec.Name,
		Description:   "reactor processing group " + spec.Name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       spec.AckWait,
		MaxDeliver:    spec.MaxDeliver,
		MaxAckPending: spec.MaxAckPending,
		Replicas:      spec.Replicas,
	}
	switch len(spec.FilterSubjects) {
	case 0:
	case 1:
		cc.FilterSubject = spec.FilterSubjects[0]
	default:
		cc.FilterSubjects = spec.FilterSubjects
	}
	return cc
}

// EnsureConsumer creates the durable consumer on t's Work stream, or updates
// it to spec. Work-queue streams allow only one consumer per subject: a
// second group with overlapping filters is refused by the server, and the
// error says so.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, t Topology, spec ConsumerSpec) (jetstream.Consumer, error) {
	t = t.WithDefaults()
	if spec.Name == "" {
		return nil, errors.New("stream: consumer needs a name")
	}
	cc := spec.ConsumerConfig()
	// An update without PauseUntil would resume a paused group: keep the
	// pause of a group an operator paused while its processes restart.
	if have, err := js.Consumer(ctx, t.Work, spec.Name); err == nil && have.CachedInfo().Paused {
		cc.PauseUntil = have.CachedInfo().Config.PauseUntil
	}
	c, err := js.CreateOrUpdateConsumer(ctx, t.Work, cc)
	if err != nil {
		hint := ""
		if strings.Contains(err.Error(), "overlap") || strings.Contains(err.Error(), "unique") {
			hint = " (a work queue allows one consumer group per subject: use filters that do not overlap, or share the group)"
		}
		return nil, fmt.Errorf("ensure consumer %q on %s: %w%s", spec.Name, t.Work, err, hint)
	}
	return c, nil
}
