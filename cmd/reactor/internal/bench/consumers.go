package bench

import (
	"context"
	"fmt"
	"sync"
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
	s.metrics.WatchProcessor(p)
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

func (s *reactorSide) cleanup() {
	deleteStreams(s.js, s.topo.Alerts, s.topo.DLQ)
}

// rawSide is the baseline: nats.go jetstream as a user writes it with the
// library alone. One Limits stream with a duplicate window, a durable
// consumer with explicit acks and the server's defaults, PublishAsync with
// a Msg-Id, Consume with its default options, its callback handing each
// message to a pool of Workers goroutines that read the delivery count,
// spend Work, ack (DoubleAck if asked) and record the ack. No router,
// middleware, heartbeat, tracing, failure injection, dead-lettering, nor
// any remedy for Consume's stalls: the ratio is what reactor costs over
// what a user gets without it.
type rawSide struct {
	js      jetstream.JetStream
	cfg     Config
	name    string
	subject string
	t       *tracker

	quit chan struct{}
	wg   sync.WaitGroup
	cc   jetstream.ConsumeContext
}

const rawConsumer = "raw"

func (s *rawSide) setup(ctx context.Context) error {
	_, err := s.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       s.name,
		Subjects:   []string{s.subject},
		Storage:    jetstream.FileStorage,
		Duplicates: s.cfg.DuplicateWindow,
	})
	if err != nil {
		return fmt.Errorf("bench: raw stream: %w", err)
	}
	_, err = s.js.CreateOrUpdateConsumer(ctx, s.name, jetstream.ConsumerConfig{
		Durable:   rawConsumer,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   s.cfg.AckWait,
	})
	if err != nil {
		return fmt.Errorf("bench: raw consumer: %w", err)
	}
	return nil
}

// publish is PublishAsync with a Msg-Id (the header publishRange sets),
// waiting for the batch's acks.
func (s *rawSide) publish(ctx context.Context, msgs []*nats.Msg, done func(int, error)) {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			done(i, err)
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
			done(i, nil)
		case err := <-f.Err():
			done(i, err)
		case <-ctx.Done():
			done(i, context.Cause(ctx))
		}
	}
}

func (s *rawSide) start(ctx context.Context) error {
	cons, err := s.consumer(ctx)
	if err != nil {
		return fmt.Errorf("bench: raw consumer: %w", err)
	}
	work := make(chan jetstream.Msg)
	s.quit = make(chan struct{})
	for range s.cfg.Workers {
		s.wg.Go(func() {
			for {
				select {
				case msg := <-work:
					s.handle(ctx, msg)
				case <-s.quit:
					return
				}
			}
		})
	}
	s.cc, err = cons.Consume(func(msg jetstream.Msg) {
		select {
		case work <- msg:
		case <-s.quit:
		}
	})
	if err != nil {
		close(s.quit)
		s.wg.Wait()
		return fmt.Errorf("bench: raw consume: %w", err)
	}
	return nil
}

// handle is one raw worker's turn.
func (s *rawSide) handle(ctx context.Context, msg jetstream.Msg) {
	if meta, err := msg.Metadata(); err == nil {
		s.t.delivered(int(meta.NumDelivered))
	}
	if s.cfg.Work > 0 {
		time.Sleep(s.cfg.Work)
	}
	var err error
	if s.cfg.DoubleAck {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stream.RequestTimeoutDefault)
		err = msg.DoubleAck(actx)
		cancel()
	} else {
		err = msg.Ack()
	}
	if err != nil {
		return // not settled: the server redelivers it after AckWait
	}
	h := msg.Headers()
	s.t.settle(h.Get(nats.MsgIdHdr), h.Get(headerSent), false, time.Now())
}

func (s *rawSide) stop() error {
	s.cc.Stop()
	select {
	case <-s.cc.Closed():
	case <-time.After(5 * time.Second):
	}
	close(s.quit)
	s.wg.Wait()
	return nil
}

func (s *rawSide) consumer(ctx context.Context) (jetstream.Consumer, error) {
	return s.js.Consumer(ctx, s.name, rawConsumer)
}

func (s *rawSide) dlq() string { return "" }

func (s *rawSide) cleanup() { deleteStreams(s.js, s.name) }

func deleteStreams(js jetstream.JetStream, names ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range names {
		_ = js.DeleteStream(ctx, name)
	}
}
