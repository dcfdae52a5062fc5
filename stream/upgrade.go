package stream

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Before one alert stream, reactor kept a second stream: a work queue
// (WorkQueue retention, ALERTS_WORK by default) sourcing the alert stream,
// with each group's consumer on the work queue. An upgrade drains it: the
// work queue stops sourcing (it is frozen), each group handles what is left
// of its old consumer, and its consumer on the alert stream starts right
// after the last alert the work queue received, so that nothing is lost and
// nothing handled twice. The work queue is deleted with its last consumer.

// Metadata of a frozen work queue.
const (
	metaLegacyOf   = "reactor_legacy_of"       // the alert stream it sourced
	metaLegacyLast = "reactor_legacy_last_seq" // the last alert stream sequence it received
)

// Legacy is an old layout's work queue, frozen.
type Legacy struct {
	// Stream is the work queue's name.
	Stream string
	// LastSeq is the last alert stream sequence the work queue received: a
	// group that had a consumer on it starts on the alert stream right
	// after.
	LastSeq uint64
	// Groups are the consumers left on it.
	Groups []string
}

// findLegacy returns the old layout's work queue of t's alert stream: a
// WorkQueue stream that sources it, or did before it was frozen. It returns
// nil when there is none.
func findLegacy(ctx context.Context, js jetstream.JetStream, t Topology) (*jetstream.StreamInfo, error) {
	streams := js.ListStreams(ctx)
	var found *jetstream.StreamInfo
	for info := range streams.Info() {
		if info.Config.Retention != jetstream.WorkQueuePolicy || found != nil {
			continue
		}
		if info.Config.Metadata[metaLegacyOf] == t.Alerts {
			found = info
		}
		for _, src := range info.Config.Sources {
			if src != nil && src.Name == t.Alerts {
				found = info
			}
		}
	}
	if err := streams.Err(); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	return found, nil
}

// FreezeLegacy finds the old layout's work queue of t's alert stream, stops
// its sourcing and records the last alert it received. It returns nil when
// there is none. Freezing is done once; later calls read what it recorded.
func FreezeLegacy(ctx context.Context, js jetstream.JetStream, t Topology) (*Legacy, error) {
	t = t.WithDefaults()
	info, err := findLegacy(ctx, js, t)
	if err != nil || info == nil {
		return nil, err
	}
	name := info.Config.Name
	last, err := strconv.ParseUint(info.Config.Metadata[metaLegacyLast], 10, 64)
	if err != nil {
		if last, err = freeze(ctx, js, t, info); err != nil {
			return nil, fmt.Errorf("freeze old work queue %s: %w", name, err)
		}
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("old work queue %s: %w", name, err)
	}
	groups, err := durables(ctx, s)
	if err != nil {
		return nil, err
	}
	return &Legacy{Stream: name, LastSeq: last, Groups: groups}, nil
}

// freeze removes the work queue's source, then works out the last alert it
// received and records it. The source's own record of it (Seq) is read
// before the source is removed; what arrived in between shows in the work
// queue's messages.
func freeze(ctx context.Context, js jetstream.JetStream, t Topology, info *jetstream.StreamInfo) (uint64, error) {
	var seen uint64
	for _, src := range info.Sources {
		if src != nil && src.Name == t.Alerts {
			seen = src.Seq
		}
	}
	cfg := info.Config
	cfg.Metadata = maps.Clone(cfg.Metadata)
	if cfg.Metadata == nil {
		cfg.Metadata = map[string]string{}
	}
	cfg.Metadata[metaLegacyOf] = t.Alerts
	if len(cfg.Sources) > 0 {
		cfg.Sources = nil
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return 0, fmt.Errorf("stop sourcing: %w", err)
		}
	}
	s, err := js.Stream(ctx, cfg.Name)
	if err != nil {
		return 0, err
	}
	last, err := lastReceived(ctx, s, t.Alerts, seen)
	if err != nil {
		return 0, err
	}
	if a, err := js.Stream(ctx, t.Alerts); err == nil {
		last = min(last, a.CachedInfo().State.LastSeq) // the alert stream was recreated since
	}
	cfg.Metadata[metaLegacyLast] = strconv.FormatUint(last, 10)
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return 0, fmt.Errorf("record its last sequence: %w", err)
	}
	return last, nil
}

// lastReceived is the last alert stream sequence the frozen work queue s
// received, at least seen. The work queue stored the alerts it sourced in
// order, one sequence each, so its k-th message came from alert sequence k
// or later: its last sequence is a lower bound, and its last message left
// (with the alert sequence in its Nats-Stream-Source header) moves the bound
// by its offset. Too low a bound makes a group handle a few alerts twice;
// never does it skip one.
func lastReceived(ctx context.Context, s jetstream.Stream, alerts string, seen uint64) (uint64, error) {
	state := s.CachedInfo().State
	last := max(seen, state.LastSeq)
	if state.Msgs == 0 {
		return last, nil
	}
	m, err := s.GetLastMsgForSubject(ctx, ">")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return last, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read its last message: %w", err)
	}
	// "<stream>[:<hash>] <seq> <filter> <transform> ..."
	f := strings.Fields(m.Header.Get("Nats-Stream-Source"))
	if len(f) < 2 {
		return last, nil
	}
	if name, _, _ := strings.Cut(f[0], ":"); name != alerts {
		return last, nil
	}
	if h, err := strconv.ParseUint(f[1], 10, 64); err == nil && h >= m.Sequence {
		last = max(last, h+state.LastSeq-m.Sequence)
	}
	return last, nil
}

// RetireLegacy deletes group's consumer from the frozen work queue, and the
// work queue with its last consumer. It reports whether the work queue was
// deleted and how many alerts it still held then (alerts no group's filter
// matched).
func RetireLegacy(ctx context.Context, js jetstream.JetStream, l *Legacy, group string) (deleted bool, left uint64, err error) {
	if err := js.DeleteConsumer(ctx, l.Stream, group); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, 0, fmt.Errorf("delete consumer %q of old work queue %s: %w", group, l.Stream, err)
	}
	s, err := js.Stream(ctx, l.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return true, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("old work queue %s: %w", l.Stream, err)
	}
	groups, err := durables(ctx, s)
	if err != nil || len(groups) > 0 {
		return false, 0, err
	}
	left = s.CachedInfo().State.Msgs
	if err := js.DeleteStream(ctx, l.Stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, left, fmt.Errorf("delete old work queue %s: %w", l.Stream, err)
	}
	return true, left, nil
}
