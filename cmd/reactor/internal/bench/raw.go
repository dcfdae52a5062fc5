package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// rawConnName is the client name of the raw side's connection.
const rawConnName = "reactor-bench-raw"

// dialRaw opens the raw side's connection to the bench's server: a
// connection of its own, as a program that uses nats.go alone opens it, with
// the library's defaults and only what reaching the server takes (the
// in-process server, or the URL and its credentials). Nothing of reactor's
// connection is shared: no options, no JetStream context, no async publisher.
func dialRaw(sc stream.Config) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{nats.Name(rawConnName)}
	auth, err := sc.Auth.Options()
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, auth...)
	if sc.InProcess != nil {
		opts = append(opts, nats.InProcessServer(sc.InProcess))
	}
	nc, err := nats.Connect(sc.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: raw connection: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bench: raw jetstream: %w", err)
	}
	return nc, js, nil
}

// rawSide is the baseline: nats.go jetstream as a user writes it with the
// library alone, on connections and JetStream contexts of its own
// (dialRaw). One Limits stream with a duplicate window, a durable consumer
// per group with explicit acks and the server's defaults (MaxAckPending if
// set), PublishMsgAsync with a Msg-Id header, and per group and process
// Consume with its default options (PullMaxMessages if Prefetch is set), its
// callback handing each message to a pool of Workers goroutines that read
// the delivery count, spend Work, ack (DoubleAck if asked) and record the
// ack. No PubAck timeout, resend, traceparent, router, middleware,
// heartbeat, failure injection, dead-lettering, nor any remedy for
// Consume's stalls: the ratio is what reactor costs over what a user gets
// without it.
type rawSide struct {
	js      []jetstream.JetStream // one per process; the first publishes
	cfg     Config
	name    string
	subject string
	t       *tracker

	quit chan struct{}
	wg   sync.WaitGroup
	ccs  []jetstream.ConsumeContext
}

const rawConsumer = "raw"

func (s *rawSide) setup(ctx context.Context) error {
	_, err := s.js[0].CreateStream(ctx, jetstream.StreamConfig{
		Name:       s.name,
		Subjects:   []string{s.subject},
		Storage:    jetstream.FileStorage,
		Duplicates: s.cfg.DuplicateWindow,
		Replicas:   s.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("bench: raw stream: %w", err)
	}
	for g := range s.cfg.Groups {
		_, err = s.js[0].CreateOrUpdateConsumer(ctx, s.name, jetstream.ConsumerConfig{
			Durable:       groupName(rawConsumer, s.cfg, g),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       s.cfg.AckWait,
			MaxAckPending: s.cfg.MaxAckPending,
		})
		if err != nil {
			return fmt.Errorf("bench: raw consumer: %w", err)
		}
	}
	return nil
}

// publish is PublishMsgAsync with a Msg-Id (the header publishRange sets),
// then a wait for the batch's PubAcks in order. nats.go has no PubAck
// timeout by default, so a PubAck that never comes would hold the batch for
// ever: the bench gives up on it after the drain timeout and counts a
// failed publish.
func (s *rawSide) publish(ctx context.Context, msgs []*nats.Msg, done func(int, error)) {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := s.js[0].PublishMsgAsync(m)
		if err != nil {
			done(i, err)
			continue
		}
		futures[i] = f
	}
	timeout := time.NewTimer(s.cfg.DrainTimeout)
	defer timeout.Stop()
	expired := false
	for i, f := range futures {
		if f == nil {
			continue
		}
		var err error
		if expired {
			select {
			case <-f.Ok():
			case err = <-f.Err():
			default:
				err = jetstream.ErrAsyncPublishTimeout
			}
			done(i, err)
			continue
		}
		select {
		case <-f.Ok():
		case err = <-f.Err():
		case <-ctx.Done():
			err = context.Cause(ctx)
		case <-timeout.C:
			expired, err = true, jetstream.ErrAsyncPublishTimeout
		}
		done(i, err)
	}
}

func (s *rawSide) start(ctx context.Context) error {
	s.quit = make(chan struct{})
	var opts []jetstream.PullConsumeOpt
	if s.cfg.Prefetch > 0 {
		opts = append(opts, jetstream.PullMaxMessages(s.cfg.Prefetch))
	}
	for g := range s.cfg.Groups {
		for _, js := range s.js {
			cons, err := js.Consumer(ctx, s.name, groupName(rawConsumer, s.cfg, g))
			if err != nil {
				s.stopAll()
				return fmt.Errorf("bench: raw consumer: %w", err)
			}
			work := make(chan jetstream.Msg)
			for range s.cfg.Workers {
				s.wg.Go(func() {
					for {
						select {
						case msg := <-work:
							s.handle(ctx, g, msg)
						case <-s.quit:
							return
						}
					}
				})
			}
			cc, err := cons.Consume(func(msg jetstream.Msg) {
				select {
				case work <- msg:
				case <-s.quit:
				}
			}, opts...)
			if err != nil {
				s.stopAll()
				return fmt.Errorf("bench: raw consume: %w", err)
			}
			s.ccs = append(s.ccs, cc)
		}
	}
	return nil
}

// handle is one raw worker's turn for group g.
func (s *rawSide) handle(ctx context.Context, g int, msg jetstream.Msg) {
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
	s.t.settle(g, h.Get(nats.MsgIdHdr), h.Get(headerSent), false, time.Now())
}

func (s *rawSide) stop() error {
	s.stopAll()
	return nil
}

func (s *rawSide) stopAll() {
	for _, cc := range s.ccs {
		cc.Stop()
	}
	for _, cc := range s.ccs {
		select {
		case <-cc.Closed():
		case <-time.After(5 * time.Second):
		}
	}
	s.ccs = nil
	close(s.quit)
	s.wg.Wait()
}

func (s *rawSide) consumers(ctx context.Context) ([]jetstream.Consumer, error) {
	var cs []jetstream.Consumer
	for g := range s.cfg.Groups {
		c, err := s.js[0].Consumer(ctx, s.name, groupName(rawConsumer, s.cfg, g))
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func (s *rawSide) dlq() string { return "" }

func (s *rawSide) flush(ctx context.Context) error { return flushAll(ctx, s.js) }

func (s *rawSide) cleanup() { deleteStreams(s.js[0], s.name) }
