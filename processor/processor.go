package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sourcegraph/conc/pool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/reactor-alerts/reactor/processor/internal/pullwatch"
	"github.com/reactor-alerts/reactor/stream"
)

// ErrShutdown is the cause of the handlers' context when a shutdown runs out
// of patience: their messages are nak'ed for immediate redelivery.
var ErrShutdown = errors.New("processor: shutting down")

// Result describes one settled message, for OnOutcome.
type Result struct {
	Message *Message
	// Entry is the entry that took the message (see Mux); empty when none
	// did or the handler is not a Mux.
	Entry    string
	Outcome  Outcome
	Delay    time.Duration // for OutcomeRetry and OutcomeDefer
	Err      error         // the handler's error, nil on success
	Duration time.Duration // time spent in the handler
	// SettleErr is a failure to acknowledge, nak or dead-letter the
	// message. A failed dead-letter publish is nak'ed instead: Outcome is
	// then OutcomeRetry and SettleErr says why.
	SettleErr error
}

// Processor runs a pool of workers over the durable consumer of a group and
// settles every message according to its handler's result.
type Processor struct {
	js      jetstream.JetStream
	h       Handler
	route   func(m *Message) (Handler, string)
	cfg     Config
	backoff backoff
	log     *slog.Logger
	tracer  trace.Tracer // nil with a noop provider: no span per alert
	redrive string       // the group's redrive subject prefix, see alertSubject
	spec    stream.ConsumerSpec

	stopping atomic.Bool
	lookup   background // a missed heartbeat's consumer lookup
	attempts attemptLog
	running  atomic.Int64
	bound    atomic.Bool
	marks    atomic.Uint64 // in-progress marks sent
	dropped  atomic.Uint64 // redeliveries of alerts held already

	deferrals deferralLog // see Defer

	// Set up by Run.
	buf   *buffer
	slots []slot
}

// New returns a Processor that hands every message of cfg's group to h:
// usually a Mux (a *Router, or the rules of a handlers config), whose
// entries then name the messages they take.
func New(js jetstream.JetStream, h Handler, cfg Config) (*Processor, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider() // delegates to a provider installed later
	}
	route := func(*Message) (Handler, string) { return h, "" }
	if mux, ok := h.(Mux); ok {
		route = mux.Route
	}
	var tracer trace.Tracer
	if _, ok := tp.(noop.TracerProvider); !ok {
		tracer = tp.Tracer(tracerName)
	}
	return &Processor{
		tracer:   tracer,
		js:       js,
		h:        h,
		route:    route,
		cfg:      cfg,
		backoff:  backoff{base: cfg.BackoffBase, max: cfg.BackoffMax},
		log:      cfg.Logger.With("stream", cfg.Topology.Alerts, "consumer", cfg.Group),
		redrive:  cfg.Topology.RedriveSubject(cfg.Group, ""),
		spec:     cfg.consumerSpec(),
		attempts: attemptLog{first: make(map[uint64]attempt)},
	}, nil
}

// Ready reports whether the processor is bound to its consumer and pulling.
func (p *Processor) Ready() bool { return p.bound.Load() }

// Config returns the processor's configuration, with defaults applied.
func (p *Processor) Config() Config { return p.cfg }

// InFlight is the number of handlers running now.
func (p *Processor) InFlight() int { return int(p.running.Load()) }

// ProgressMarks is the number of in-progress marks the processor sent: to
// alerts whose handler ran long, and to alerts that waited long in the
// prefetch. Each costs the server what an ack costs; with fast handlers
// none is sent.
func (p *Processor) ProgressMarks() uint64 { return p.marks.Load() }

// DroppedRedeliveries is the number of redeliveries the processor dropped
// because it held the alert already, buffered or running: the server
// redelivered it while its marks were late (as during a cluster's leader
// election). The copy held settles the alert.
func (p *Processor) DroppedRedeliveries() uint64 { return p.dropped.Load() }

// Run ensures the topology, then processes messages until ctx is cancelled.
// Cancelling ctx is a soft stop: no more messages are pulled, messages not
// yet started are nak'ed, and running handlers get ShutdownTimeout to
// finish. Then their context is cancelled with ErrShutdown and whatever did
// not finish is nak'ed for immediate redelivery. Run returns nil after a
// shutdown, or the error that kept it from starting.
func (p *Processor) Run(ctx context.Context) error {
	if err := stream.EnsureStreams(ctx, p.js, p.cfg.Topology); err != nil {
		return fmt.Errorf("processor: %w", err)
	}
	p.logStreams(ctx)
	if st, ok := p.h.(Starter); ok {
		stop, err := st.Start(ctx, Group{Name: p.cfg.Group, Topology: p.cfg.Topology, JetStream: p.js, Logger: p.cfg.Logger})
		if err != nil {
			return fmt.Errorf("processor: start handler: %w", err)
		}
		defer stop() // after the workers are done: deferred before them, run after
	}
	hctx, hcancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer hcancel(ErrShutdown)

	p.buf = newBuffer(p.cfg.Prefetch, p.cfg.Workers, p.cfg.AckWait/8, p.cfg.waitMark()-p.cfg.tickEvery())
	p.slots = make([]slot, p.cfg.Workers)
	for i := range p.slots {
		p.slots[i].worker, p.slots[i].buf = i, p.buf
	}
	if p.cfg.DoubleAck {
		nc := p.js.Conn()
		inbox := nc.NewInbox()
		for i := range p.slots {
			c, err := newConfirmer(nc, inbox, i, stream.RequestTimeoutDefault, stream.ResendAfterDefault)
			if err != nil {
				return fmt.Errorf("processor: %w", err)
			}
			p.slots[i].confirm = c
			defer c.close()
		}
	}
	workers := pool.New().WithMaxGoroutines(p.cfg.Workers)
	for i := range p.cfg.Workers {
		workers.Go(func() {
			for {
				it, ok := p.buf.take(i)
				if !ok {
					return
				}
				p.handle(hctx, &p.slots[i], it)
				p.buf.done(i)
			}
		})
	}
	stopBeat, beaten := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(beaten)
		p.heartbeat(stopBeat)
	}()
	dispatch := func(msg jetstream.Msg, meta *jetstream.MsgMetadata) {
		if p.stopping.Load() {
			_ = msg.Nak() // pulled but not buffered: redeliver now
			return
		}
		if p.cfg.Topology.RedrivenForOther(p.cfg.Group, msg.Subject()) {
			// Another group's to handle: settled for this one.
			p.log.Debug("alert redriven for another group: acked unhandled", "subject", msg.Subject())
			_ = msg.Ack()
			return
		}
		late, held := p.buf.put(msg, meta)
		if held {
			// Neither acked nor nak'ed: the copy this process holds
			// settles the alert, and its marks keep it.
			p.log.Debug("redelivered alert held already: dropped", "seq", meta.Sequence.Stream, "delivered", meta.NumDelivered)
			p.dropped.Add(1)
			return
		}
		if late && p.cfg.Heartbeat > 0 {
			p.markInProgress(msg)
		}
	}

	p.log.Info("processor started", "workers", p.cfg.Workers, "prefetch", p.cfg.Prefetch, "ack_wait", p.cfg.AckWait, "max_deliver", p.cfg.MaxDeliver)
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		p.watchBacklog(wctx)
	}()
	stopPauseWatch := p.watchPause(ctx)
	err := p.loop(ctx, dispatch)
	p.lookup.close()
	stopPauseWatch()
	stopWatch()
	<-watched
	p.stopping.Store(true)
	for _, it := range p.buf.close() {
		_ = it.msg.Nak() // buffered but not started: redeliver now
	}
	p.shutdown(workers, hcancel)
	close(stopBeat)
	<-beaten
	return err
}

// loop consumes until ctx is done, recreating the consumer whenever it is
// lost, and pulling again whenever Consume stalls (see pullwatch.Watch).
func (p *Processor) loop(ctx context.Context, dispatch func(jetstream.Msg, *jetstream.MsgMetadata)) error {
	for {
		s, err := p.consume(ctx, dispatch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		p.bound.Store(true)
		wctx, stopWatch := context.WithCancel(ctx)
		stalled, watched := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(watched)
			if s.watch.Run(wctx, s.cons) {
				close(stalled)
			}
		}()
		select {
		case <-ctx.Done():
			stopWatch()
			<-watched
			p.bound.Store(false)
			p.stopping.Store(true)
			p.buf.drain() // a callback blocked on a full buffer lets go
			drain(s.cc)
			return nil
		case reason := <-s.restart:
			stopWatch()
			<-watched
			p.bound.Store(false)
			p.log.Warn("consumer lost, recreating it", "err", reason)
			s.cc.Stop()
		case <-stalled:
			stopWatch()
			<-watched
			p.log.Debug("pull stalled with alerts pending: pulling again")
			s.cc.Stop()
		}
	}
}

// pullHeartbeat is how often the server confirms a pending pull. Two missed
// ones make the client pull again: when a consumer leader dies, its pending
// pulls die with it, and nothing else tells the client, so this bounds the
// failover to a new leader. It is nats.go's minimum (500ms): an idle
// heartbeat costs the server one small message per pull.
const pullHeartbeat = 500 * time.Millisecond

// session is one Consume on the bound consumer: restart reports that the
// consumer is gone; watch notices when the pulls stall.
type session struct {
	cons    jetstream.Consumer
	cc      jetstream.ConsumeContext
	restart <-chan error
	watch   *pullwatch.Watch
}

// consume binds the durable consumer, retrying until ctx is done, and starts
// pulling. The restart channel reports that the consumer is gone.
func (p *Processor) consume(ctx context.Context, dispatch func(jetstream.Msg, *jetstream.MsgMetadata)) (session, error) {
	restart := make(chan error, 1)
	signal := func(err error) {
		select {
		case restart <- err:
		default:
		}
	}
	wait := 100 * time.Millisecond
	for {
		cons, err := stream.EnsureConsumer(ctx, p.js, p.cfg.Topology, p.spec)
		if err == nil {
			watch := new(pullwatch.Watch)
			p.buf.started(time.Now())
			cc, err := cons.Consume(watch.Wrap(dispatch),
				jetstream.PullMaxMessages(p.cfg.Prefetch),
				jetstream.PullHeartbeat(pullHeartbeat),
				jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
					p.consumeError(ctx, cons, err, signal)
				}))
			if err == nil {
				return session{cons: cons, cc: cc, restart: restart, watch: watch}, nil
			}
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.Code == 400 {
			return session{}, fmt.Errorf("processor: %w", err) // a config the server refuses: retrying will not help
		}
		p.log.Warn("cannot bind consumer, retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return session{}, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// consumeError sorts the errors Consume reports: a deleted consumer stops
// Consume for good and must be recreated; missing heartbeats may mean the
// same, so the consumer is looked up.
func (p *Processor) consumeError(ctx context.Context, cons jetstream.Consumer, err error, restart func(error)) {
	switch {
	case errors.Is(err, jetstream.ErrConsumerDeleted),
		errors.Is(err, jetstream.ErrConsumerNotFound),
		errors.Is(err, jetstream.ErrBadRequest):
		restart(err)
	case errors.Is(err, jetstream.ErrNoHeartbeat):
		p.log.Debug("consumer heartbeat missed", "err", err)
		// Consume has pulled again already. The lookup runs aside: this
		// goroutine of nats.go's also pulls again on the next missed
		// heartbeat, and while the consumer has no leader (for the 4-9s of
		// a hard-killed leader's election) its info request waits out
		// RequestTimeoutDefault, which held every pull back that long.
		p.lookup.start(func() {
			ictx, cancel := context.WithTimeout(ctx, stream.RequestTimeoutDefault)
			defer cancel()
			if _, ierr := cons.Info(ictx); errors.Is(ierr, jetstream.ErrConsumerNotFound) {
				restart(ierr)
			}
		})
	default:
		p.log.Debug("consume", "err", err)
	}
}

// drainTimeout bounds how long drain waits for nats.go to hand over what it
// still buffers before it stops the consume for good.
const drainTimeout = 5 * time.Second

// drain stops pulling and waits until every buffered message went through
// dispatch, which naks them while stopping.
func drain(cc jetstream.ConsumeContext) {
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-time.After(drainTimeout):
		cc.Stop()
	}
}

// shutdown waits for running handlers, then cancels them and naks what is
// left.
func (p *Processor) shutdown(workers *pool.Pool, hcancel context.CancelCauseFunc) {
	done := make(chan struct{})
	go func() {
		workers.Wait()
		close(done)
	}()
	n := p.InFlight()
	if n > 0 {
		p.log.Info("draining in-flight alerts", "in_flight", n, "timeout", p.cfg.ShutdownTimeout)
	}
	select {
	case <-done:
		p.log.Info("processor stopped")
		return
	case <-time.After(p.cfg.ShutdownTimeout):
	}
	p.log.Warn("shutdown timeout: cancelling handlers", "in_flight", p.InFlight())
	hcancel(ErrShutdown)
	select {
	case <-done:
	case <-time.After(time.Second):
		// Handlers that ignore their context keep running; their messages
		// are nak'ed now and whatever they report later is ignored.
	}
	for i := range p.slots {
		if d := p.slots[i].get(); d != nil && d.settle() {
			_ = d.msg.Nak()
		}
	}
	p.log.Info("processor stopped")
}

// background runs one function at a time in its own goroutine, and none
// once closed.
type background struct {
	mu      sync.Mutex
	running bool
	closed  bool
	wg      sync.WaitGroup
}

// start runs f in a goroutine, unless one is running or b is closed.
func (b *background) start(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running || b.closed {
		return
	}
	b.running = true
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
		b.mu.Lock()
		b.running = false
		b.mu.Unlock()
	}()
}

// close waits for the running function, if any, and runs no more.
func (b *background) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}
