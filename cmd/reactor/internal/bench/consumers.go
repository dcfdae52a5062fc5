package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/processor/metrics"
	"github.com/reactor-alerts/reactor/stream"
)

// consumerSide is what processes a phase's alerts: reactor's processor, or
// the bare jetstream baseline.
type consumerSide interface {
	start(ctx context.Context) error
	stop() error
}

// processorConfig is the processor configuration of the reactor phase. The
// raw phase binds a consumer with the same spec and the same pull size, so
// the two differ only in what happens between a pull and an ack.
func processorConfig(cfg Config, topo stream.Topology, t *tracker, m *metrics.Metrics) processor.Config {
	return processor.Config{
		Topology:        topo,
		Group:           benchGroup,
		Workers:         cfg.Workers,
		MaxDeliver:      benchMaxDeliver,
		BackoffBase:     benchBackoffBase,
		BackoffMax:      benchBackoffMax,
		ShutdownTimeout: 5 * time.Second,
		DoubleAck:       cfg.DoubleAck,
		Logger:          cfg.Logger,
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

// reactorSide runs processor.Processor with a Router holding the synthetic
// handler, counting outcomes with reactor's Prometheus metrics.
type reactorSide struct {
	js      jetstream.JetStream
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
	return &reactorSide{js: js, pcfg: processorConfig(cfg, topo, t, m), router: r, metrics: m}
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

// rawPullHeartbeat is the processor's pull heartbeat (1s, unexported there):
// two missed heartbeats make nats.go pull again, which bounds the stalls of
// Consume in both phases alike.
const rawPullHeartbeat = time.Second

// rawSide is the baseline: one pull consumer with the processor's spec and
// pull size, its callback handing messages to Workers goroutines through an
// unbuffered channel (as the processor does), each of which reads the
// delivery count, sleeps Work, acks and records the ack. No router,
// middleware, heartbeat, failure injection or dead-lettering. Like the
// processor, it pulls again when Consume stalls (stream.PullWatch): the
// ratio is the cost of the framework, not of a nats.go stall that one
// phase happened to hit and the other not.
type rawSide struct {
	js   jetstream.JetStream
	cfg  Config
	topo stream.Topology
	t    *tracker

	quit        chan struct{}
	wg          sync.WaitGroup
	stopConsume func()
}

func (s *rawSide) start(ctx context.Context) error {
	pcfg := processorConfig(s.cfg, s.topo, s.t, nil)
	cons, err := stream.EnsureConsumer(ctx, s.js, s.topo, pcfg.ConsumerSpec())
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	type pulled struct {
		msg  jetstream.Msg
		meta *jetstream.MsgMetadata
	}
	work := make(chan pulled)
	s.quit = make(chan struct{})
	for range s.cfg.Workers {
		s.wg.Go(func() {
			for {
				select {
				case m := <-work:
					s.handle(ctx, m.msg, m.meta)
				case <-s.quit:
					return
				}
			}
		})
	}
	handoff := func(msg jetstream.Msg, meta *jetstream.MsgMetadata) {
		select {
		case work <- pulled{msg, meta}:
		case <-s.quit:
		}
	}
	s.stopConsume, err = stream.ConsumeWatched(ctx, cons, handoff, jetstream.PullMaxMessages(s.cfg.Workers), jetstream.PullHeartbeat(rawPullHeartbeat))
	if err != nil {
		close(s.quit)
		s.wg.Wait()
		return fmt.Errorf("bench: raw consume: %w", err)
	}
	return nil
}

// handle is one raw worker's turn: meta is msg's metadata, parsed by the
// consumer callback as the processor's is.
func (s *rawSide) handle(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata) {
	if meta != nil {
		s.t.delivered(int(meta.NumDelivered))
	}
	if s.cfg.Work > 0 {
		time.Sleep(s.cfg.Work)
	}
	var err error
	if s.cfg.DoubleAck {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = msg.DoubleAck(actx)
		cancel()
	} else {
		err = msg.Ack()
	}
	if err != nil {
		return // not settled: the server redelivers it after AckWait
	}
	h := msg.Headers()
	s.t.settle(h.Get("Nats-Msg-Id"), h.Get(headerSent), false, time.Now())
}

func (s *rawSide) stop() error {
	s.stopConsume()
	close(s.quit)
	s.wg.Wait()
	return nil
}
