package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PauseIndefinitely is how far ahead PauseGroup sets the deadline of a
// pause without one: JetStream pauses a consumer until a time, and a
// century is "until resumed".
const PauseIndefinitely = 100 * 365 * 24 * time.Hour

// ErrGroupNotFound means no consumer group of that name exists.
var ErrGroupNotFound = errors.New("stream: no consumer group with that name")

// PauseGroup pauses the durable consumer of group until the given time (zero
// means PauseIndefinitely from now): the server delivers nothing to any of
// the group's processes until then or until ResumeGroup. Alerts keep being
// stored and wait. It returns the deadline the server set.
func PauseGroup(ctx context.Context, js jetstream.JetStream, t Topology, group string, until time.Time) (time.Time, error) {
	if until.IsZero() {
		until = time.Now().Add(PauseIndefinitely)
	}
	if err := groupExists(ctx, js, t, group); err != nil {
		return time.Time{}, err
	}
	res, err := js.PauseConsumer(ctx, t.WithDefaults().Alerts, group, until.UTC())
	if err != nil {
		return time.Time{}, fmt.Errorf("pause group %q: %w", group, err)
	}
	return res.PauseUntil, nil
}

// ResumeGroup resumes a paused group: its processes receive alerts again.
// Resuming a group that is not paused does nothing.
func ResumeGroup(ctx context.Context, js jetstream.JetStream, t Topology, group string) error {
	if err := groupExists(ctx, js, t, group); err != nil {
		return err
	}
	if _, err := js.ResumeConsumer(ctx, t.WithDefaults().Alerts, group); err != nil {
		return fmt.Errorf("resume group %q: %w", group, err)
	}
	return nil
}

func groupExists(ctx context.Context, js jetstream.JetStream, t Topology, group string) error {
	if group == "" {
		return errors.New("stream: a group needs a name")
	}
	c, err := js.Consumer(ctx, t.WithDefaults().Alerts, group)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("%w: %q on %s", ErrGroupNotFound, group, t.WithDefaults().Alerts)
	}
	if err != nil {
		return fmt.Errorf("group %q: %w", group, err)
	}
	if c.CachedInfo().Config.Durable == "" {
		return fmt.Errorf("%w: %q on %s", ErrGroupNotFound, group, t.WithDefaults().Alerts)
	}
	return nil
}

// pausedUntil is the deadline of a consumer's pause, or zero when it is not
// paused.
func pausedUntil(info *jetstream.ConsumerInfo) time.Time {
	if !info.Paused || info.Config.PauseUntil == nil {
		return time.Time{}
	}
	return info.Config.PauseUntil.UTC()
}
