package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// DeferralsBucket is the key-value bucket where the processor counts the
// deferrals (see Defer) of each alert, per group, under the key
// <group>.<stream>.<seq>. It is created on the first deferral, with the
// replicas of the topology and its MaxAge as the TTL of every key.
//
// JetStream counts every delivery, deferred or not, and a nak cannot carry
// a header; so the processor subtracts the recorded deferrals from the
// delivery count of every redelivered alert before it decides anything
// (the past-MaxDeliver check, a dead letter on the last delivery). The
// count lives in JetStream, not in the process, so that it holds for every
// process of the group and across restarts. It costs a read on each
// redelivery and a read and a write on each deferral; first deliveries, the
// common case, cost nothing.
const DeferralsBucket = "REACTOR_DEFERRALS"

// deferralLog opens DeferralsBucket once.
type deferralLog struct {
	mu sync.Mutex
	kv jetstream.KeyValue
}

// bucket returns the bucket, creating it if it does not exist and create is
// set. It is created on the first deferral rather than at start-up: most
// groups never need it. A read does not create it: without the bucket no
// deferral was recorded, and creating a replicated bucket fails while a
// server of the cluster is down ("no suitable peers for placement"),
// which would hold back every redelivered alert of the outage.
func (d *deferralLog) bucket(ctx context.Context, js jetstream.JetStream, cfg Config, create bool) (jetstream.KeyValue, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.kv != nil {
		return d.kv, nil
	}
	kv, err := js.KeyValue(ctx, DeferralsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) && !create {
		return nil, err
	}
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      DeferralsBucket,
			Description: "reactor: deferrals of each alert per group, not counted as failed deliveries",
			TTL:         cfg.Topology.MaxAge,
			Replicas:    cfg.Topology.Replicas,
			Storage:     jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, DeferralsBucket) // another process was first
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %q: %w", DeferralsBucket, err)
	}
	d.kv = kv
	return kv, nil
}

func (p *Processor) deferralKey(m *Message) string {
	return fmt.Sprintf("%s.%s.%d", kvToken(p.cfg.Group), kvToken(m.stream), m.sequence)
}

// discountDeferrals takes m's recorded deferrals off its delivery count. If
// they cannot be read, it naks msg (the handler does not run, so that a
// deferred alert is not dead-lettered for a count it cannot check) and
// reports false.
func (p *Processor) discountDeferrals(ctx context.Context, msg jetstream.Msg, m *Message) bool {
	n, err := p.deferrals.count(ctx, p, m)
	if err != nil {
		delay := p.backoff.delay(1, randJitter())
		p.log.Warn("alert not handled: its deferrals cannot be read", "subject", m.subject, "seq", m.sequence, "delivered", m.delivered, "retry_in", delay, "err", err)
		_ = msg.NakWithDelay(delay)
		return false
	}
	m.delivered = max(1, m.delivered-n)
	return true
}

func (d *deferralLog) count(ctx context.Context, p *Processor, m *Message) (int, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stream.RequestTimeoutDefault)
	defer cancel()
	kv, err := d.bucket(ctx, p.js, p.cfg, false)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return 0, nil // no deferral recorded yet
	}
	if err != nil {
		return 0, err
	}
	e, err := kv.Get(ctx, p.deferralKey(m))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read deferrals: %w", err)
	}
	n, err := strconv.Atoi(string(e.Value()))
	if err != nil {
		return 0, fmt.Errorf("read deferrals: bad count %q", e.Value())
	}
	return n, nil
}

// deferDelivery records one more deferral of m, then naks msg with delay.
// If the record fails the alert is nak'ed all the same (waiting is what it
// asked for) and this delivery will count toward MaxDeliver; the error says
// so.
func (p *Processor) deferDelivery(ctx context.Context, msg jetstream.Msg, m *Message, delay time.Duration) error {
	rerr := p.deferrals.record(ctx, p, m)
	if err := msg.NakWithDelay(delay); err != nil {
		return errors.Join(rerr, err)
	}
	return rerr
}

func (d *deferralLog) record(ctx context.Context, p *Processor, m *Message) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stream.RequestTimeoutDefault)
	defer cancel()
	kv, err := d.bucket(ctx, p.js, p.cfg, true)
	if err != nil {
		return fmt.Errorf("record deferral: %w", err)
	}
	key := p.deferralKey(m)
	for range 3 { // another process may hold the same alert after an ack timeout
		var e jetstream.KeyValueEntry
		e, err = kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = kv.Create(ctx, key, []byte("1"))
		case err == nil:
			var n int
			if n, err = strconv.Atoi(string(e.Value())); err == nil {
				_, err = kv.Update(ctx, key, []byte(strconv.Itoa(n+1)), e.Revision())
			}
		}
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("record deferral %s: %w", key, err)
}

// kvToken returns s if it is a valid key token, else its hex encoding.
func kvToken(s string) string {
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '=' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return fmt.Sprintf("%x", s)
		}
	}
	return s
}
