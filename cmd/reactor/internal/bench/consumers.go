package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
// processors) or the bare nats.go baseline, with Config.Groups consumer
// groups of Config.Processes consumers each.
type side interface {
	// setup creates the side's streams and binds its consumers.
	setup(ctx context.Context) error
	// publish stores msgs, calling done with each one's index and result.
	publish(ctx context.Context, msgs []*nats.Msg, done func(i int, err error))
	// start starts consuming; stop stops and waits.
	start(ctx context.Context) error
	stop() error
	// consumers are the durable consumers holding the side's backlog, one
	// per group.
	consumers(ctx context.Context) ([]jetstream.Consumer, error)
	// dlq is the side's dead-letter stream, "" if it has none.
	dlq() string
	// flush flushes the side's connections: their acks reach the server.
	flush(ctx context.Context) error
	// cleanup deletes the side's streams.
	cleanup()
}

// groupName is the name of consumer group g of a side whose single group
// is named one.
func groupName(one string, cfg Config, g int) string {
	if cfg.Groups == 1 {
		return one
	}
	return one + "-" + strconv.Itoa(g+1)
}

// processorConfig is the processor configuration of group g of the reactor
// phase.
func processorConfig(cfg Config, topo stream.Topology, t *tracker, m *metrics.Metrics, g int) processor.Config {
	return processor.Config{
		Topology:        topo,
		Group:           groupName(benchGroup, cfg, g),
		Workers:         cfg.Workers,
		Prefetch:        cfg.Prefetch,
		MaxAckPending:   cfg.MaxAckPending,
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
				t.settle(g, msg.ID(), msg.Header(headerSent), false, time.Now())
			case processor.OutcomeDeadLetter:
				t.settle(g, msg.ID(), msg.Header(headerSent), true, time.Now())
			}
		},
	}
}

// reactorSide runs reactor's topology, publisher and processor.Processor
// with a Router holding the synthetic handler, counting outcomes with
// reactor's Prometheus metrics: one processor per group and process, each
// process on a connection of its own.
type reactorSide struct {
	js      []jetstream.JetStream // one per process; the first publishes
	topo    stream.Topology
	pub     *stream.Publisher
	pcfgs   []processor.Config // one per group
	router  *processor.Router
	metrics *metrics.Metrics

	cancel context.CancelFunc
	done   chan error
}

func newReactorSide(js []jetstream.JetStream, pub *stream.Publisher, cfg Config, topo stream.Topology, t *tracker, pattern string) *reactorSide {
	r := processor.NewRouter()
	r.Handle(pattern, &synthetic{tr: t, inj: newInjector(cfg), work: cfg.Work})
	m := metrics.New(prometheus.NewRegistry())
	s := &reactorSide{js: js, topo: topo, pub: pub, router: r, metrics: m}
	for g := range cfg.Groups {
		s.pcfgs = append(s.pcfgs, processorConfig(cfg, topo, t, m, g))
	}
	return s
}

func (s *reactorSide) setup(ctx context.Context) error {
	if err := stream.EnsureStreams(ctx, s.js[0], s.topo); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	// Bind the consumers now, so processing starts with the first publish.
	for _, pcfg := range s.pcfgs {
		if _, err := processor.EnsureGroup(ctx, s.js[0], pcfg); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

func (s *reactorSide) publish(ctx context.Context, msgs []*nats.Msg, done func(int, error)) {
	s.pub.PublishBatch(ctx, msgs, func(r stream.Result) { done(r.Index, r.Err) })
}

func (s *reactorSide) start(ctx context.Context) error {
	var ps []*processor.Processor
	for _, pcfg := range s.pcfgs {
		for _, js := range s.js {
			p, err := processor.New(js, s.router, pcfg)
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			ps = append(ps, p)
		}
	}
	// The marks of every processor of the phase, as one counter: what
	// metrics.WatchProcessor counts of one.
	s.metrics.Registry().MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "reactor_progress_marks_total",
		Help: "In-progress marks sent by the phase's processors.",
	}, func() float64 {
		var n uint64
		for _, p := range ps {
			n += p.ProgressMarks()
		}
		return float64(n)
	}))
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan error, len(ps))
	for _, p := range ps {
		go func() { s.done <- p.Run(ctx) }()
	}
	return nil
}

func (s *reactorSide) stop() error {
	s.cancel()
	errs := make([]error, cap(s.done))
	for i := range errs {
		errs[i] = <-s.done
	}
	return errors.Join(errs...)
}

func (s *reactorSide) consumers(ctx context.Context) ([]jetstream.Consumer, error) {
	var cs []jetstream.Consumer
	for _, pcfg := range s.pcfgs {
		c, err := s.js[0].Consumer(ctx, s.topo.Alerts, pcfg.Group)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func (s *reactorSide) dlq() string { return s.topo.DLQ }

func (s *reactorSide) flush(ctx context.Context) error { return flushAll(ctx, s.js) }

func (s *reactorSide) cleanup() {
	deleteStreams(s.js[0], s.topo.Alerts, s.topo.DLQ)
}

func flushAll(ctx context.Context, js []jetstream.JetStream) error {
	var errs []error
	for _, j := range js {
		errs = append(errs, j.Conn().FlushWithContext(ctx))
	}
	return errors.Join(errs...)
}

func deleteStreams(js jetstream.JetStream, names ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range names {
		_ = js.DeleteStream(ctx, name)
	}
}
