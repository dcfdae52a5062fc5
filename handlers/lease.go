package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// Concurrency is counted across the group: an entry's concurrent (per key
// with per) bounds the runs at once over every process of the group. Each
// run holds a slot: a key of LeaseBucket, created if absent (a
// compare-and-set JetStream settles between processes) with a per-key TTL,
// the lease, which the running process renews every third of it and
// deletes when the run ends. A process killed mid-run stops renewing, and
// its slot frees itself within the lease. A run whose lease cannot be
// renewed before it runs out (JetStream unreachable that long) is
// cancelled, so that two runs of one key never overlap; the alert is then
// retried. Without JetStream (rules not started, as in a replay) the slots
// are this process's alone.
//
// Rates stay per process (see limit.go): a rate shared by the group would
// cost a contended compare-and-set per alert, while a concurrency slot
// costs two writes per run, which runs that take a person's or a host's
// time (a restart, a page) do not notice.

// LeaseBucket is the key-value bucket of the concurrency slots, shared by
// every process of a group: one key per slot taken,
// <group>.<digest of the entry's name and the rendered per key>.<slot>,
// whose value names the run holding it and whose per-key TTL is the lease.
// It is created on first use.
const LeaseBucket = "REACTOR_LEASES"

// LeaseDefault is how long a slot stays taken after its process stops
// renewing it (killed), unless the limit's lease says otherwise.
const LeaseDefault = 15 * time.Second

// MinLease is the shortest lease: the server expires keys by the second,
// and the holder renews every third of the lease.
const MinLease = 2 * time.Second

// leaseMarkerTTL is how long the bucket keeps the marker of a slot freed.
const leaseMarkerTTL = time.Minute

func newLeaseStore(g processor.Group) *groupBucket {
	return &groupBucket{js: g.JetStream, group: g.Name, replicas: g.Topology.Replicas,
		name: LeaseBucket, description: "reactor: concurrency slots taken, one key per running action with its lease as TTL",
		markerTTL: leaseMarkerTTL}
}

// concurrency is an entry's concurrent and per, compiled.
type concurrency struct {
	entry string
	slots int
	per   *alertTemplate // nil: one key for the entry
	lease time.Duration

	mu   sync.Mutex
	keys map[string]*keySlots // by slot key prefix; the slots this process holds
}

// keySlots is what this process holds of one key's slots.
type keySlots struct {
	mu   sync.Mutex // held while taking a slot: one attempt at a time per key
	mine []bool     // slot i is held by a run of this process
	refs int        // guarded by concurrency.mu: users of this record
}

// leaseValue is what a slot's key holds: the run holding it.
type leaseValue struct {
	Alert string `json:"alert"` // <stream>:<seq>
	Host  string `json:"host"`
	PID   int    `json:"pid"`
}

func newConcurrency(n int, per string, lease time.Duration) (*concurrency, error) {
	c := &concurrency{slots: n, lease: lease, keys: make(map[string]*keySlots)}
	if c.lease == 0 {
		c.lease = LeaseDefault
	}
	if c.lease < MinLease || c.lease%time.Second != 0 {
		return nil, fmt.Errorf("lease %s: want whole seconds, at least %s", lease, MinLease)
	}
	if per != "" {
		t, err := parseTemplate("per", per)
		if err == nil {
			_, err = t.checkSample(t.sampleAlert(false), maxKeyLen)
		}
		if err != nil {
			return nil, fmt.Errorf("per %q: %v", per, err)
		}
		c.per = t
	}
	return c, nil
}

// keyOf renders the per key of a; "" without per.
func (c *concurrency) keyOf(a stream.Alert) (string, error) {
	if c.per == nil {
		return "", nil
	}
	k, err := c.per.render(a, maxKeyLen)
	if err != nil {
		// The template cannot hold for this alert: retrying will not help.
		return "", processor.Permanent(fmt.Errorf("limit per key of entry %q: %w", c.entry, err))
	}
	return k, nil
}

// prefix is the slots' key prefix in LeaseBucket for the rendered key.
func (c *concurrency) prefix(group, key string) string {
	sum := sha256.Sum256([]byte(c.entry + "\x00" + key))
	return kvToken(group) + "." + hex.EncodeToString(sum[:16])
}

func (c *concurrency) use(prefix string) *keySlots {
	c.mu.Lock()
	defer c.mu.Unlock()
	ks := c.keys[prefix]
	if ks == nil {
		ks = &keySlots{mine: make([]bool, c.slots)}
		c.keys[prefix] = ks
	}
	ks.refs++
	return ks
}

// unuse drops a use of ks, and forgets it when no run holds a slot.
func (c *concurrency) unuse(prefix string, ks *keySlots) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ks.refs--
	if ks.refs == 0 {
		delete(c.keys, prefix)
	}
}

// acquire takes a slot of a's key for m, or returns nil if all are taken.
// With a store, the slot is the group's; without, this process's.
func (c *concurrency) acquire(ctx context.Context, store *groupBucket, m *processor.Message, a stream.Alert) (*lease, error) {
	key, err := c.keyOf(a)
	if err != nil {
		return nil, err
	}
	group := processor.GroupDefault
	if store != nil {
		group = store.group
	}
	prefix := c.prefix(group, key)
	ks := c.use(prefix)
	l, err := c.take(ctx, store, m, key, prefix, ks)
	if l == nil {
		c.unuse(prefix, ks)
	}
	return l, err
}

func (c *concurrency) take(ctx context.Context, store *groupBucket, m *processor.Message, key, prefix string, ks *keySlots) (*lease, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	var kv jetstream.KeyValue
	var value []byte
	if store != nil {
		var err error
		if kv, err = store.bucket(ctx); err != nil {
			return nil, fmt.Errorf("limit: %w", err)
		}
		host, _ := os.Hostname()
		value, _ = json.Marshal(leaseValue{Alert: holderOf(m), Host: host, PID: os.Getpid()})
	}
	for i, mine := range ks.mine {
		if mine {
			continue
		}
		l := &lease{c: c, ks: ks, prefix: prefix, key: key, slot: i}
		if kv != nil {
			l.kv, l.js, l.value = kv, store.js, value
			l.kvKey = prefix + "." + strconv.Itoa(i)
			l.renewed = time.Now()
			rev, err := kv.Create(ctx, l.kvKey, value, jetstream.KeyTTL(c.lease))
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // another process's run holds it
			}
			if err != nil {
				return nil, fmt.Errorf("limit: take a slot of key %q: %w", key, err)
			}
			l.rev = rev
		}
		ks.mine[i] = true
		return l, nil
	}
	return nil, nil
}

// lease is a slot held by a run.
type lease struct {
	c      *concurrency
	ks     *keySlots
	prefix string
	key    string // rendered per key
	slot   int

	// Without JetStream these are zero.
	kv      jetstream.KeyValue
	js      jetstream.JetStream
	kvKey   string
	value   []byte
	rev     uint64    // written by the renewer while it runs
	renewed time.Time // when the last write confirmed was sent

	stop chan struct{}
	done chan struct{}
}

// errLeaseLost is the cause of a run cancelled because its slot could no
// longer be held.
type errLeaseLost struct {
	entry, key string
	err        error
}

func (e *errLeaseLost) Error() string {
	return fmt.Sprintf("limit of entry %q: the slot of key %q was lost (%v): run cancelled, so that two runs of the key never overlap", e.entry, e.key, e.err)
}

func (e *errLeaseLost) Unwrap() error { return e.err }

// hold returns the context to run with: it is cancelled if the lease
// cannot be renewed in time. Call release when the run is over.
func (l *lease) hold(ctx context.Context) context.Context {
	if l.kv == nil {
		return ctx
	}
	ctx, cancel := context.WithCancelCause(ctx)
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.done)
		defer cancel(nil)
		every := l.c.lease / 3
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			sent := time.Now()
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), every)
			rev, err := l.renew(rctx)
			rcancel()
			switch {
			case err == nil:
				l.rev, l.renewed = rev, sent
			case wrongLastSequence(err):
				cancel(&errLeaseLost{entry: l.c.entry, key: l.key, err: errors.New("it expired and was written since")})
				return
			case time.Since(l.renewed) >= l.c.lease*2/3:
				// The next tick would be too late: the server may expire
				// the slot before it.
				cancel(&errLeaseLost{entry: l.c.entry, key: l.key, err: fmt.Errorf("not renewed for %s: %w", time.Since(l.renewed).Round(time.Millisecond), err)})
				return
			}
		}
	}()
	return ctx
}

// renew writes the slot again with a fresh TTL, if it is still the one
// written last. KeyValue.Update takes no TTL (nats.go v1.55.0), so the
// write goes to the key's subject, as Update's does.
func (l *lease) renew(ctx context.Context) (uint64, error) {
	msg := &nats.Msg{Subject: "$KV." + LeaseBucket + "." + l.kvKey, Data: l.value}
	ack, err := l.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(l.rev), jetstream.WithMsgTTL(l.c.lease))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// wrongLastSequence reports whether err is JetStream refusing a write
// because another came first.
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// release frees the slot: the renewer stops and the key is deleted, unless
// it was written since (expired and taken by another run).
func (l *lease) release(ctx context.Context) error {
	if l.stop != nil {
		close(l.stop)
		<-l.done
	}
	var err error
	if l.kv != nil {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stream.RequestTimeoutDefault)
		err = l.kv.Purge(pctx, l.kvKey, jetstream.LastRevision(l.rev), jetstream.PurgeTTL(leaseMarkerTTL))
		cancel()
		if wrongLastSequence(err) || errors.Is(err, jetstream.ErrKeyExists) {
			err = nil // not ours any more
		}
		if err != nil {
			err = fmt.Errorf("limit: free the slot of key %q (it frees itself within %s): %w", l.key, l.c.lease, err)
		}
	}
	l.ks.mu.Lock()
	l.ks.mine[l.slot] = false
	l.ks.mu.Unlock()
	l.c.unuse(l.prefix, l.ks)
	return err
}

// ConcurrencyState is the state of the slots of one key, for explain.
type ConcurrencyState struct {
	// Key is the rendered per key; empty without per.
	Key string `json:"key"`
	// Slots is how many runs of the key may run at once.
	Slots int `json:"slots"`
	// Taken are the slots held now.
	Taken []Lease `json:"taken,omitempty"`
	// Known reports whether the slots could be read: the rules are started
	// (see Rules.Start).
	Known bool `json:"known"`
}

// Lease is one slot taken.
type Lease struct {
	Slot int `json:"slot"`
	// Alert is the alert whose run holds it, "<stream>:<seq>"; Host and PID
	// the process running it.
	Alert string `json:"alert"`
	Host  string `json:"host"`
	PID   int    `json:"pid"`
	// Renewed is when it was last written; Until when it frees itself if
	// not renewed.
	Renewed time.Time `json:"renewed"`
	Until   time.Time `json:"until"`
}

// peek reads the slots of a's key in store without changing them; without
// a store, it renders the key alone.
func (c *concurrency) peek(ctx context.Context, store *groupBucket, a stream.Alert) (ConcurrencyState, error) {
	key, err := c.keyOf(a)
	if err != nil {
		return ConcurrencyState{}, err
	}
	out := ConcurrencyState{Key: key, Slots: c.slots, Known: store != nil}
	if store == nil {
		return out, nil
	}
	kv, err := store.open(ctx)
	if err != nil || kv == nil {
		return out, err
	}
	prefix := c.prefix(store.group, key)
	for i := range c.slots {
		e, err := kv.Get(ctx, prefix+"."+strconv.Itoa(i))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			continue
		case err != nil:
			return out, fmt.Errorf("limit: read slot %d of key %q: %w", i, key, err)
		}
		var v leaseValue
		_ = json.Unmarshal(e.Value(), &v)
		out.Taken = append(out.Taken, Lease{Slot: i, Alert: v.Alert, Host: v.Host, PID: v.PID, Renewed: e.Created(), Until: e.Created().Add(c.lease)})
	}
	return out, nil
}
