package handlers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/processor"
)

// groupBucket is a key-value bucket the processes of a group share (the
// suppression windows, the concurrency leases), opened once and created on
// first use, with per-key TTLs (nats-server 2.11 or later).
type groupBucket struct {
	js          jetstream.JetStream
	group       string
	replicas    int
	name        string
	description string
	markerTTL   time.Duration // how long a deleted or expired key's marker stays

	mu sync.Mutex
	kv jetstream.KeyValue
}

func newSuppressStore(g processor.Group) *groupBucket {
	return &groupBucket{js: g.JetStream, group: g.Name, replicas: g.Topology.Replicas,
		name: SuppressBucket, description: "reactor: open suppression windows, one key per window with its TTL",
		markerTTL: suppressMarkerTTL}
}

// open returns the bucket, or nil if it does not exist yet.
func (st *groupBucket) open(ctx context.Context) (jetstream.KeyValue, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.kv != nil {
		return st.kv, nil
	}
	kv, err := st.js.KeyValue(ctx, st.name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %q: %w", st.name, err)
	}
	st.kv = kv
	return kv, nil
}

// bucket returns the bucket, creating it if needed.
func (st *groupBucket) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	if kv, err := st.open(ctx); kv != nil || err != nil {
		return kv, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	kv, err := st.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         st.name,
		Description:    st.description,
		LimitMarkerTTL: st.markerTTL,
		Replicas:       max(st.replicas, 1),
		Storage:        jetstream.FileStorage,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = st.js.KeyValue(ctx, st.name) // another process was first
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %q: %w", st.name, err)
	}
	st.kv = kv
	return kv, nil
}
