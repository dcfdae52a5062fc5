package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/processor"

	"github.com/reactor-alerts/reactor/stream"
)

// SuppressBucket is the key-value bucket of the suppression windows, shared
// by every process of a group: one key per open window,
// <group>.<digest of the entry's name and the rendered key>, whose value is
// the alert that opened it ("<stream>:<seq>") and whose per-key TTL is the
// window (nats-server 2.11 or later). It is created on first use.
const SuppressBucket = "REACTOR_SUPPRESS"

// SuppressKeyDefault is the key of a suppress without one: the subject and
// every label, so that repeats are alerts from the same source.
const SuppressKeyDefault = `{{.Subject}}{{range $k, $v := .Labels}} {{$k}}={{$v}}{{end}}`

// MinSuppressFor is the shortest window: the server expires keys by the
// second.
const MinSuppressFor = time.Second

// suppressMarkerTTL is how long the bucket keeps the marker of a window that
// expired or ended.
const suppressMarkerTTL = time.Minute

// suppressor is an entry's SuppressConfig, compiled.
type suppressor struct {
	entry  string
	key    string // as written
	tmpl   *alertTemplate
	window time.Duration
}

func (x SuppressConfig) parse() (*suppressor, error) {
	key := x.Key
	if key == "" {
		key = SuppressKeyDefault
	}
	tmpl, err := parseTemplate("key", key)
	if err == nil {
		_, err = tmpl.checkSample(tmpl.sampleAlert(false), maxKeyLen)
	}
	if err != nil {
		return nil, fmt.Errorf("key %q: %v", key, err)
	}
	if x.For < MinSuppressFor {
		return nil, fmt.Errorf(`for: want a window of at least %s, e.g. "10m"`, MinSuppressFor)
	}
	return &suppressor{key: key, tmpl: tmpl, window: x.For}, nil
}

// window is one alert's window of one entry: its rendered key and its key
// in the bucket.
type window struct {
	rendered string
	kvKey    string
}

func (s *suppressor) windowOf(group string, a stream.Alert) (window, error) {
	r, err := s.tmpl.render(a, maxKeyLen)
	if err != nil {
		// The template cannot hold for this alert: retrying will not help.
		return window{}, processor.Permanent(fmt.Errorf("suppress key of entry %q: %w", s.entry, err))
	}
	sum := sha256.Sum256([]byte(s.entry + "\x00" + r))
	return window{rendered: r, kvKey: kvToken(group) + "." + hex.EncodeToString(sum[:16])}, nil
}

// claim is a window held by the alert being handled, or, for a repeat, the
// window another alert holds.
type claim struct {
	kv  jetstream.KeyValue // nil: suppression off, or a repeat
	key string
	rev uint64
	// repeatOf is the alert holding the window ("<stream>:<seq>") when the
	// alert being handled is a repeat of it; its key is rendered.
	repeatOf, rendered string
}

// claim opens the window of a for the message m, or finds it already held
// by m (a redelivery of the alert that opened it: its actions have not
// succeeded yet). When another alert holds it, m is a repeat: the claim
// says of which alert. Without a store (rules not started), every alert
// acts.
func (s *suppressor) claim(ctx context.Context, store *groupBucket, m *processor.Message, a stream.Alert) (*claim, error) {
	if store == nil {
		return &claim{}, nil
	}
	w, err := s.windowOf(store.group, a)
	if err != nil {
		return nil, err
	}
	kv, err := store.bucket(ctx)
	if err != nil {
		return nil, fmt.Errorf("suppress: %w", err)
	}
	holder := holderOf(m)
	for range 3 { // the window may expire or end between the read and the create
		// Read first: in a storm most alerts are repeats, and a read is
		// one direct get, served beside the bucket's write path.
		e, err := kv.Get(ctx, w.kvKey)
		switch {
		case err == nil && string(e.Value()) == holder:
			return &claim{kv: kv, key: w.kvKey, rev: e.Revision()}, nil
		case err == nil:
			return &claim{repeatOf: string(e.Value()), rendered: w.rendered}, nil
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return nil, fmt.Errorf("suppress: read window: %w", err)
		}
		rev, err := kv.Create(ctx, w.kvKey, []byte(holder), jetstream.KeyTTL(s.window))
		if err == nil {
			return &claim{kv: kv, key: w.kvKey, rev: rev}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("suppress: open window: %w", err)
		}
		// Another process opened it between the read and the create.
	}
	return nil, fmt.Errorf("suppress: window %s: opened and closed under us three times", w.kvKey)
}

// release ends the window c holds, unless another alert has opened a new
// one since.
func (c *claim) release(ctx context.Context) error {
	if c.kv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stream.RequestTimeoutDefault)
	defer cancel()
	err := c.kv.Purge(ctx, c.key, jetstream.LastRevision(c.rev), jetstream.PurgeTTL(suppressMarkerTTL))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil // expired and opened again by another alert: not ours
	}
	return err
}

// end ends the window of a, if one is open.
func (s *suppressor) end(ctx context.Context, store *groupBucket, a stream.Alert) error {
	if store == nil {
		return nil
	}
	w, err := s.windowOf(store.group, a)
	if err != nil {
		return err
	}
	kv, err := store.bucket(ctx)
	if err != nil {
		return fmt.Errorf("suppress: %w", err)
	}
	if _, err := kv.Get(ctx, w.kvKey); errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil // nothing to end: no marker written
	}
	if err := kv.Purge(ctx, w.kvKey, jetstream.PurgeTTL(suppressMarkerTTL)); err != nil {
		return fmt.Errorf("suppress: end window: %w", err)
	}
	return nil
}

// Window is the state of one suppression window, for explain.
type Window struct {
	// Key is the rendered key.
	Key string `json:"key"`
	// Open reports whether a window is open: a firing alert with this key
	// would be suppressed, unless it is the one that opened it.
	Open bool `json:"open"`
	// Holder is the alert that opened it, "<stream>:<seq>".
	Holder string `json:"holder,omitempty"`
	// Until is when it ends, at the latest.
	Until time.Time `json:"until,omitzero"`
}

// peek reads the window of a in store without changing it; without a
// store, it renders the key alone.
func (s *suppressor) peek(ctx context.Context, store *groupBucket, a stream.Alert) (Window, error) {
	group := processor.GroupDefault
	if store != nil {
		group = store.group
	}
	w, err := s.windowOf(group, a)
	if err != nil {
		return Window{}, err
	}
	out := Window{Key: w.rendered}
	if store == nil {
		return out, nil
	}
	kv, err := store.open(ctx)
	if err != nil {
		return out, fmt.Errorf("suppress: %w", err)
	}
	if kv == nil {
		return out, nil
	}
	e, err := kv.Get(ctx, w.kvKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return out, nil
	case err != nil:
		return out, fmt.Errorf("suppress: read window: %w", err)
	}
	out.Open, out.Holder, out.Until = true, string(e.Value()), e.Created().Add(s.window)
	return out, nil
}

// kvToken returns s if it is a valid key token, else its hex encoding.
func kvToken(s string) string {
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '=' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return hex.EncodeToString([]byte(s))
		}
	}
	return s
}
