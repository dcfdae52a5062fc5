package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/processor/metrics"
	"github.com/reactor-alerts/reactor/stream"
)

// side is what one phase runs: reactor (its topology, publisher and
// processor) or the bare nats.go baseline.
type side interface {
	// setup creates the side's streams and binds its consumer.
	setup(ctx context.Context) error
	// publish stores msgs, calling done with each one's index and result.
	publish(ctx context.Context, msgs []*nats.Msg, done func(i int, err error))
	// start starts consuming; stop stops and waits.
	start(ctx context.Context) error
	stop() error
	// consumer is the durable consumer holding the side's backlog.
	consumer(ctx context.Context) (jetstream.Consumer, error)
	// dlq is the side's dead-letter stream, "" if it has none.
	dlq() string
	// flush flushes the side's connection: its acks reach the server.
	flush(ctx context.Context) error
	// cleanup deletes the side's streams.
	cleanup()
}

// processorConfig is the processor configuration of the reactor phase.
func processorConfig(cfg Config, topo stream.Topology, t *tracker, m *metrics.Metrics) processor.Config {
	return processor.Config{
		Topology:        topo,
		Group:           benchGroup,
		Workers:         cfg.Workers,
		AckWait:         cfg.AckWait,
		MaxDeliver:      benchMaxDeliver,
		BackoffBase:     benchBackoffBase,
		BackoffMax:      benchBackoffMax,
		ShutdownTimeout: 5 * time.Second,
		DoubleAck:       cfg.DoubleAck,
		Logger:          cfg.Logger,
		TracerProvider:  noop.NewTracerProvider(), // as reactor run
		OnOutcome: func(r processor.Result) {
			if m != nil {
				m.Observe(r)
			}
			msg := r.Message
			t.delivered(msg.Delivered())
			switch r.Outcome {
			case processor.OutcomeAck, processor.OutcomeDrop:
				t.settle(msg.ID(), msg.Header(headerSent), false, time.Now())
			case processor.OutcomeDeadLetter:
				t.settle(msg.ID(), msg.Header(headerSent), true, time.Now())
			}
		},
	}
}

// reactorSide runs reactor's topology, publisher and processor.Processor
// with a Router holding the synthetic handler, counting outcomes with
// reactor's Prometheus metrics.
type reactorSide struct {
	js      jetstream.JetStream
	topo    stream.Topology
	pub     *stream.Publisher
	pcfg    processor.Config
	router  *processor.Router
	metrics *metrics.Metrics

	cancel context.CancelFunc
	done   chan error
}

func newReactorSide(js jetstream.JetStream, cfg Config, topo stream.Topology, t *tracker, pattern string) *reactorSide {
	r := processor.NewRouter()
	r.Handle(pattern, &synthetic{tr: t, inj: newInjector(cfg), work: cfg.Work})
	m := metrics.New(prometheus.NewRegistry())
	return &reactorSide{js: js, topo: topo, pub: stream.NewPublisher(js, stream.PublisherConfig{}),
		pcfg: processorConfig(cfg, topo, t, m), router: r, metrics: m}
}

func (s *reactorSide) setup(ctx context.Context) error {
	if err := stream.EnsureStreams(ctx, s.js, s.topo); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	// Bind the consumer now, so processing starts with the first publish.
	if _, err := processor.EnsureGroup(ctx, s.js, s.pcfg); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

func (s *reactorSide) publish(ctx context.Context, msgs []*nats.Msg, done func(int, error)) {
	s.pub.PublishBatch(ctx, msgs, func(r stream.Result) { done(r.Index, r.Err) })
}

func (s *reactorSide) start(ctx context.Context) error {
	p, err := processor.New(s.js, s.router, s.pcfg)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan error, 1)
	go func() { s.done <- p.Run(ctx) }()
	return nil
}

func (s *reactorSide) stop() error {
	s.cancel()
	return <-s.done
}

func (s *reactorSide) consumer(ctx context.Context) (jetstream.Consumer, error) {
	return s.js.Consumer(ctx, s.topo.Alerts, benchGroup)
}

func (s *reactorSide) dlq() string { return s.topo.DLQ }

func (s *reactorSide) flush(ctx context.Context) error { return s.js.Conn().FlushWithContext(ctx) }

func (s *reactorSide) cleanup() {
	deleteStreams(s.js, s.topo.Alerts, s.topo.DLQ)
}

func deleteStreams(js jetstream.JetStream, names ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range names {
		_ = js.DeleteStream(ctx, name)
	}
}
