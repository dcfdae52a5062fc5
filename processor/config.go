package processor

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/reactor-alerts/reactor/stream"
)

// PrefetchDefault is Config.Prefetch's default: nats.go's own default pull
// size. A pull size near the worker count costs throughput (see
// docs/design.md) and makes nats.go's Consume stall more often.
const PrefetchDefault = 500

// Config configures a Processor. The zero value is valid: it processes the
// default topology with 8 workers.
type Config struct {
	// Topology names the streams. Defaults to stream.Topology's defaults.
	Topology stream.Topology
	// Group is the durable consumer shared by every process of the group.
	// Defaults to "reactor".
	Group string
	// FilterSubjects restricts the group to some subjects. Defaults to all.
	FilterSubjects []string
	// Start is where the group starts in the alert stream when its consumer
	// is created; an existing group keeps its position. Defaults to
	// stream.StartAuto: every alert kept for the first group of the stream,
	// the next alert for a group added later.
	Start stream.Start
	// Workers bounds concurrent handler calls. Defaults to 8.
	Workers int
	// Prefetch is how many messages are pulled ahead of the workers: the
	// pull size, and how many wait in the processor's buffer for a free
	// worker. Their AckWait runs while they wait: the heartbeat marks those
	// that have waited half of it in progress (with fast handlers none
	// waits that long, so none is marked). When the workers take longer
	// than AckWait/8 to go through a batch, the buffer stops holding the
	// pulls back (they would wait in nats.go, out of reach of the marks)
	// and grows up to MaxAckPending. The same holds with DoubleAck: each
	// worker then waits a round trip per alert, and a deep prefetch keeps
	// every worker busy between its round trips. Defaults to
	// PrefetchDefault.
	Prefetch int
	// AckWait is how long a delivery may go without an ack or an
	// in-progress mark before the server redelivers it: how long the
	// alerts a crashed process held (running, or waiting in its prefetch)
	// keep their slots of MaxAckPending and wait before another process
	// gets them. The heartbeat marks every alert held long enough to need
	// it, so alerts held by a live process are never redelivered however
	// long they wait or run. Defaults to AckWaitDefault.
	AckWait time.Duration
	// MaxDeliver bounds deliveries; the last failed one is dead-lettered,
	// and one that comes back past it without an outcome (the handler
	// crashed the process or outlived AckWait) is dead-lettered without
	// running the handler again. Defaults to 5.
	MaxDeliver int
	// MaxAckPending bounds unacknowledged deliveries across the whole group.
	// Defaults to max(1000, 2*(Workers+Prefetch)).
	MaxAckPending int
	// BackoffBase is the first retry delay of a plain error; it doubles with
	// each delivery, up to BackoffMax, with jitter. Defaults to 1s.
	BackoffBase time.Duration
	// BackoffMax caps the retry delay. Defaults to 5m.
	BackoffMax time.Duration
	// Heartbeat is how often an alert whose handler runs is marked in
	// progress; an alert waiting in the prefetch is marked once it has
	// waited half its AckWait, or Heartbeat if that is longer. Defaults to
	// AckWait/3. Negative disables heartbeats.
	Heartbeat time.Duration
	// ShutdownTimeout is how long Run waits for in-flight handlers after its
	// context is cancelled before cancelling theirs. Defaults to 30s.
	ShutdownTimeout time.Duration
	// DoubleAck waits for the server to confirm each ack. Defaults to false:
	// it costs a round trip per message.
	DoubleAck bool
	// Logger logs outcome decisions and lifecycle events. Defaults to
	// discarding them.
	Logger *slog.Logger
	// TracerProvider makes the consumer span around each handler call, in
	// the trace of the alert's traceparent header. Defaults to the global
	// provider of go.opentelemetry.io/otel (a no-op unless one is installed).
	// With a noop.TracerProvider (go.opentelemetry.io/otel/trace/noop) no
	// span is started: the handler's context carries the alert's trace
	// context alone, saving a no-op span's allocations per alert.
	TracerProvider trace.TracerProvider
	// OnOutcome, if set, is called after each message is settled, from the
	// worker that settled it. It must be fast and safe for concurrent use.
	OnOutcome func(Result)
}

// Config's defaults, for the library and the command line alike.
const (
	GroupDefault   = "reactor"
	WorkersDefault = 8
	// AckWaitDefault is short so that a crash costs seconds: every alert
	// a dead process held is redelivered within it of the kill, so a
	// process restarted at once handles alerts again within it of its
	// start, however many processes of its group died.
	AckWaitDefault         = 4 * time.Second
	MaxDeliverDefault      = 5
	BackoffBaseDefault     = time.Second
	BackoffMaxDefault      = 5 * time.Minute
	ShutdownTimeoutDefault = 30 * time.Second
)

func (c Config) withDefaults() Config {
	c.Topology = c.Topology.WithDefaults()
	if c.Group == "" {
		c.Group = GroupDefault
	}
	if c.Workers <= 0 {
		c.Workers = WorkersDefault
	}
	if c.Prefetch <= 0 {
		c.Prefetch = PrefetchDefault
	}
	if c.AckWait <= 0 {
		c.AckWait = AckWaitDefault
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = MaxDeliverDefault
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = max(1000, 2*(c.Workers+c.Prefetch))
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = BackoffBaseDefault
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = BackoffMaxDefault
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = c.AckWait / 3
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = ShutdownTimeoutDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.MaxDeliver < 1 {
		errs = append(errs, fmt.Errorf("max deliver %d: must be at least 1 (dead-lettering needs a last delivery)", c.MaxDeliver))
	}
	if c.MaxAckPending < c.Workers+c.Prefetch {
		errs = append(errs, fmt.Errorf("max ack pending %d is below workers+prefetch %d: workers would starve", c.MaxAckPending, c.Workers+c.Prefetch))
	}
	if c.Heartbeat > 0 && c.Heartbeat >= c.AckWait {
		errs = append(errs, fmt.Errorf("heartbeat %s must be shorter than ack wait %s", c.Heartbeat, c.AckWait))
	}
	if c.BackoffMax < c.BackoffBase {
		errs = append(errs, fmt.Errorf("backoff max %s is below backoff base %s", c.BackoffMax, c.BackoffBase))
	}
	for _, f := range c.FilterSubjects {
		if _, err := ParsePattern(f); err != nil {
			errs = append(errs, fmt.Errorf("filter subject: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("processor: invalid config: %w", err)
	}
	return nil
}

// consumerSpec is the durable consumer this config needs, derived from the
// same fields the workers use so the two cannot drift apart.
func (c Config) consumerSpec() stream.ConsumerSpec {
	c = c.withDefaults()
	return stream.ConsumerSpec{
		Name:    c.Group,
		AckWait: c.AckWait,
		// Unlimited on the server: dead-lettering is ours. A server-side
		// limit would strand an alert whose dead-lettering failed on its
		// last delivery (the server stops delivering and only emits an
		// advisory). The processor enforces MaxDeliver itself.
		MaxDeliver:     -1,
		MaxAckPending:  c.MaxAckPending,
		FilterSubjects: c.FilterSubjects,
		Start:          c.Start,
	}
}
