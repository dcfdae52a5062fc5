package processor

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// EnsureGroup creates cfg's group, the durable consumer its processors
// share, or updates it to cfg, and returns it. Run does the same when it
// starts; a program calls it first to bind a new group before it publishes,
// so that the group does not depend on when Run gets to it.
func EnsureGroup(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Consumer, error) {
	cfg = cfg.withDefaults()
	return stream.EnsureConsumer(ctx, js, cfg.Topology, cfg.consumerSpec())
}
