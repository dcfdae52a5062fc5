package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Sourcing of History by Work, on a cluster: the server that leads History
// holds the consumer that feeds Work. When that server dies, Work's leader
// notices only by its source health check, which runs every 10s and calls a
// source stalled after 10s of silence: new alerts reach the work queue 10-20s
// late (nats-server v2.15.2, stream.go, sourceHealthCheckInterval). The
// source consumer heartbeats every second, so a silence of a few seconds
// already says it is gone; a new Work leader sets the source up at once.

// ErrNoLeader means a stream has no leader right now (an election is under
// way): sourcing could not be set up yet.
var ErrNoLeader = errors.New("stream: no leader")

// SourceInactive is how long Work has not heard from History, its source
// (messages or heartbeats), as Work's leader reports it. It is 0 while the
// source has not been set up yet.
func SourceInactive(ctx context.Context, js jetstream.JetStream, t Topology) (time.Duration, error) {
	t = t.WithDefaults()
	s, err := js.Stream(ctx, t.Work)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", t.Work, err)
	}
	for _, src := range s.CachedInfo().Sources {
		if src != nil && src.Name == t.History {
			return max(src.Active, 0), nil
		}
	}
	return 0, fmt.Errorf("stream %s does not source %s", t.Work, t.History)
}

// WaitSourcing waits until Work's source on History is set up. A new Work
// stream sets it up about 200ms after its creation (nats-server v2.15.2):
// alerts published before wait that long to reach the work queue, which a
// latency measurement must not count.
func WaitSourcing(ctx context.Context, js jetstream.JetStream, t Topology) error {
	t = t.WithDefaults()
	for {
		s, err := js.Stream(ctx, t.Work)
		if err == nil {
			for _, src := range s.CachedInfo().Sources {
				if src != nil && src.Name == t.History && src.Active >= 0 {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s: waiting for its source %s: %w", t.Work, t.History, context.Cause(ctx))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// RestartSourcing makes Work's leader step down, so that the new leader sets
// up its source on History afresh. It refuses with ErrNoLeader while History
// has no leader: the new Work leader's request would go unanswered, and
// nats-server waits 30s for it before trying again.
func RestartSourcing(ctx context.Context, js jetstream.JetStream, t Topology) error {
	t = t.WithDefaults()
	h, err := js.Stream(ctx, t.History)
	if err != nil {
		return fmt.Errorf("stream %s: %w", t.History, err)
	}
	if c := h.CachedInfo().Cluster; c == nil || c.Leader == "" {
		return fmt.Errorf("%w for stream %s", ErrNoLeader, t.History)
	}
	prefix := js.Options().APIPrefix
	if prefix == "" {
		prefix = jetstream.DefaultAPIPrefix
	}
	msg, err := js.Conn().RequestWithContext(ctx, prefix+"STREAM.LEADER.STEPDOWN."+t.Work, nil)
	if err != nil {
		return fmt.Errorf("step down leader of %s: %w", t.Work, err)
	}
	var resp struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("step down leader of %s: %w", t.Work, err)
	}
	if !resp.Success {
		reason := "refused"
		if resp.Error != nil {
			reason = resp.Error.Description
		}
		return fmt.Errorf("step down leader of %s: %s", t.Work, reason)
	}
	return nil
}
