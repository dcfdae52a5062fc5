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

// Topology names and sizes reactor's two streams:
//
//   - Alerts (Limits retention, the alert subjects): every alert, stored
//     once and kept for MaxAge. Each consumer group is a durable pull
//     consumer on it (see EnsureConsumer); replay reads it too.
//   - DLQ (Limits retention, DLQPrefix.>): dead letters with their reason.
//
// Alerts also captures RedrivePrefix.>: a dead letter redriven for a group
// is stored on RedrivePrefix.<group>.<subject>, which only that group
// handles (see RedriveSubject, RedrivenForOther).
type Topology struct {
	// Alerts is the alert stream. Defaults to "ALERTS".
	Alerts string
	// Subjects are the alert subjects. Defaults to ["alerts.>"].
	Subjects []string
	// DLQ is the dead-letter stream. Defaults to "ALERTS_DLQ".
	DLQ string
	// DLQPrefix prefixes the original subject of a dead letter:
	// "alerts.cpu" is dead-lettered on "dlq.alerts.cpu". Defaults to "dlq".
	DLQPrefix string
	// RedrivePrefix prefixes the subject of a redriven alert, before its
	// group: "alerts.cpu" redriven for group "pager" is stored on
	// "redrive.pager.alerts.cpu". Defaults to "redrive".
	RedrivePrefix string
	// MaxAge is the replay horizon: how long Alerts keeps alerts. An alert
	// a group has not settled by then is gone for that group, so the
	// processor warns when a group's oldest unsettled alert passes half of
	// it. Defaults to 7 days.
	MaxAge time.Duration
	// MaxBytes bounds the size of Alerts; once reached, new alerts are
	// refused (the publisher gets the error) rather than old ones
	// discarded, which could remove alerts a group has not settled.
	// Defaults to 0: no size limit.
	MaxBytes int64
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

// Topology defaults.
const (
	AlertsDefault          = "ALERTS"
	DLQDefault             = "ALERTS_DLQ"
	DLQPrefixDefault       = "dlq"
	RedrivePrefixDefault   = "redrive"
	MaxAgeDefault          = 7 * 24 * time.Hour
	DuplicateWindowDefault = 2 * time.Minute
	ReplicasDefault        = 1
)

// WithDefaults returns t with every zero field set to its default.
func (t Topology) WithDefaults() Topology {
	if t.Alerts == "" {
		t.Alerts = AlertsDefault
	}
	if len(t.Subjects) == 0 {
		t.Subjects = []string{"alerts.>"}
	}
	if t.DLQ == "" {
		t.DLQ = DLQDefault
	}
	if t.DLQPrefix == "" {
		t.DLQPrefix = DLQPrefixDefault
	}
	if t.RedrivePrefix == "" {
		t.RedrivePrefix = RedrivePrefixDefault
	}
	if t.MaxAge == 0 {
		t.MaxAge = MaxAgeDefault
	}
	if t.DuplicateWindow == 0 {
		t.DuplicateWindow = DuplicateWindowDefault
	}
	if t.Replicas == 0 {
		t.Replicas = ReplicasDefault
	}
	return t
}

// DLQSubject is the subject a dead letter of subject is stored on.
func (t Topology) DLQSubject(subject string) string {
	return t.WithDefaults().DLQPrefix + "." + subject
}

// RedriveSubject is the subject a dead letter of group is redriven on:
// only that group handles it.
func (t Topology) RedriveSubject(group, subject string) string {
	return t.redriveFilter(group) + "." + subject
}

// RedrivenForOther reports whether subject, delivered to group, is an alert
// redriven for another group: a group that takes every alert subject
// consumes the whole stream, and leaves those to their group.
func (t Topology) RedrivenForOther(group, subject string) bool {
	prefix := t.RedrivePrefix
	if prefix == "" {
		prefix = RedrivePrefixDefault
	}
	rest, ok := strings.CutPrefix(subject, prefix)
	if !ok || !strings.HasPrefix(rest, ".") {
		return false
	}
	rest, ok = strings.CutPrefix(rest[1:], group)
	return !ok || !strings.HasPrefix(rest, ".")
}

// redriveFilter is the prefix of every subject redriven for group.
func (t Topology) redriveFilter(group string) string {
	return t.WithDefaults().RedrivePrefix + "." + group
}

func (t Topology) alertsConfig() jetstream.StreamConfig {
	t = t.WithDefaults()
	return jetstream.StreamConfig{
		Name:        t.Alerts,
		Description: "reactor: every alert, read by each group's consumer and by replay",
		Subjects:    append(slices.Clone(t.Subjects), t.RedrivePrefix+".>"),
		Retention:   jetstream.LimitsPolicy,
		Storage:     t.Storage,
		MaxAge:      t.MaxAge,
		MaxBytes:    noLimit(t.MaxBytes),
		Duplicates:  t.DuplicateWindow,
		Replicas:    t.Replicas,
		// A full stream refuses new alerts: discarding old ones would drop
		// alerts some group has not settled yet.
		Discard: jetstream.DiscardNew,
	}
}

func (t Topology) streamConfigs() []jetstream.StreamConfig {
	t = t.WithDefaults()
	return []jetstream.StreamConfig{
		t.alertsConfig(),
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

// EnsureStreams creates the two streams, or updates them to t where the
// server allows it. A setting that cannot change in place (retention,
// storage) is reported with ErrIncompatible, naming the stream, the setting
// and what to do.
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
	}
	return nil
}

func streamUpToDate(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) &&
		have.MaxAge == want.MaxAge &&
		have.Duplicates == want.Duplicates &&
		noLimit(have.MaxBytes) == noLimit(want.MaxBytes) &&
		(want.Discard != jetstream.DiscardNew || have.Discard == want.Discard) &&
		have.Replicas == want.Replicas &&
		have.Description == want.Description
}

// noLimit is n, or -1 (no limit, as the server writes it) for n <= 0.
func noLimit(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}
