package console

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// timeline counts what happened per minute, for the overview's chart.
//
// Alerts published and dead-lettered per minute come from the streams: the
// first sequence stored at or after each minute (the server finds it from
// the time, like a consumer starting at a time) minus the next minute's. A
// minute's boundary is final once a later message exists, and is cached.
// Dead letters redriven or purged since still count in their minute.
//
// Alerts handled and the backlog are not in any stream: they come from
// samples of the groups (Console.Run), so they start when the console does.
type timeline struct {
	js   jetstream.JetStream
	topo stream.Topology

	sampling sync.Mutex // one sample at a time: each builds on the last
	mu       sync.Mutex
	bounds   map[boundKey]uint64
	samples  []sample
}

type boundKey struct {
	stream string
	minute int64
}

// sample is the groups' progress at one time.
type sample struct {
	at      time.Time
	groups  map[string]groupSample
	handled uint64 // settled by all groups since the previous sample
	valid   bool   // handled is known (a previous sample existed)
}

type groupSample struct {
	backlog    uint64 // pending + ack pending
	delivered  uint64 // last stream sequence delivered
	ackPending int
}

func newTimeline(js jetstream.JetStream, t stream.Topology) *timeline {
	return &timeline{js: js, topo: t, bounds: map[boundKey]uint64{}}
}

// sample records the groups' backlogs and what they settled since the
// previous sample, unless one is younger than minGap.
//
// What a group settled between two samples is what it received for the
// first time, the alerts of its filter between the two delivered
// sequences, less the growth of its ack pending. Both sequences are in the
// past, so alerts stored meanwhile do not count twice.
func (tl *timeline) sample(ctx context.Context, minGap time.Duration) {
	tl.sampling.Lock()
	defer tl.sampling.Unlock()
	tl.mu.Lock()
	var prev map[string]groupSample
	if n := len(tl.samples); n > 0 {
		if time.Since(tl.samples[n-1].at) < minGap {
			tl.mu.Unlock()
			return
		}
		prev = tl.samples[n-1].groups
	}
	tl.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := tl.js.Stream(ctx, tl.topo.WithDefaults().Alerts)
	if err != nil {
		return
	}
	cur := sample{at: time.Now(), groups: map[string]groupSample{}}
	infos := s.ListConsumers(ctx)
	for info := range infos.Info() {
		if info.Config.Durable == "" {
			continue
		}
		g := groupSample{backlog: info.NumPending + uint64(info.NumAckPending), delivered: info.Delivered.Stream, ackPending: info.NumAckPending}
		cur.groups[info.Name] = g
		before, ok := prev[info.Name]
		if !ok {
			continue
		}
		cur.valid = true
		received := g.delivered - min(before.delivered, g.delivered)
		if filters := stream.GroupSubjects(tl.topo, info); len(filters) > 0 && received > 0 {
			// A group of some subjects: count them. Alerts stored between
			// the two counts make this an estimate; a group of every
			// subject (the usual) needs no count, and counts the alerts
			// redriven for other groups it delivered and left, rare, as
			// received: no exact count would be cheaper.
			from, _ := countFrom(ctx, tl.js, s.CachedInfo().Config.Name, before.delivered+1, filters)
			to, _ := countFrom(ctx, tl.js, s.CachedInfo().Config.Name, g.delivered+1, filters)
			received = sub(from, to)
		}
		if settled := int64(received) - int64(g.ackPending-before.ackPending); settled > 0 {
			cur.handled += uint64(settled)
		}
	}
	if infos.Err() != nil {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.samples = append(tl.samples, cur)
	// Keep a day of samples at most: the chart shows a few hours.
	if cut := time.Now().Add(-24 * time.Hour); tl.samples[0].at.Before(cut) {
		i := 0
		for i < len(tl.samples) && tl.samples[i].at.Before(cut) {
			i++
		}
		tl.samples = append(tl.samples[:0], tl.samples[i:]...)
	}
}

func sub(a, b uint64) uint64 { return a - min(a, b) }

// countFrom counts the messages of a stream matching filters (all when
// none) from seq on, by asking the server how many a consumer starting
// there would get.
func countFrom(ctx context.Context, js jetstream.JetStream, name string, seq uint64, filters []string) (uint64, error) {
	c, err := js.CreateConsumer(ctx, name, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       seq,
		FilterSubjects:    filters,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return 0, fmt.Errorf("count %s from %d: %w", name, seq, err)
	}
	n := c.CachedInfo().NumPending
	_ = js.DeleteConsumer(context.WithoutCancel(ctx), name, c.CachedInfo().Name)
	return n, nil
}

// perStep is one stream's count per step (whole minutes), oldest first,
// for the steps starting at from (a whole step) up to and including now's.
func (tl *timeline) perStep(ctx context.Context, name string, from, now time.Time, step time.Duration) ([]uint64, error) {
	s, err := tl.js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	st := s.CachedInfo().State
	n := int(now.Sub(from)/step) + 1
	bounds := make([]uint64, n+1)
	for i := range bounds {
		m := from.Add(time.Duration(i) * step)
		switch {
		case st.Msgs == 0 || !m.Before(st.LastTime) && !m.Equal(st.LastTime):
			bounds[i] = st.LastSeq + 1
		case !m.After(st.FirstTime):
			bounds[i] = st.FirstSeq
		default:
			b, err := tl.bound(ctx, name, m)
			if err != nil {
				return nil, err
			}
			bounds[i] = b
		}
	}
	out := make([]uint64, n)
	for i := range out {
		if bounds[i+1] > bounds[i] {
			out[i] = bounds[i+1] - bounds[i]
		}
	}
	return out, nil
}

// bound is the first sequence stored at or after minute m, which the caller
// knows exists (m is before the stream's last message).
func (tl *timeline) bound(ctx context.Context, name string, m time.Time) (uint64, error) {
	key := boundKey{name, m.Unix() / 60}
	tl.mu.Lock()
	b, ok := tl.bounds[key]
	tl.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := stream.FirstSeqAt(ctx, tl.js, name, m)
	if err != nil {
		return 0, err
	}
	tl.mu.Lock()
	if len(tl.bounds) > 100_000 {
		clear(tl.bounds)
	}
	tl.bounds[key] = b
	tl.mu.Unlock()
	return b, nil
}

// stepSamples folds the samples into n steps from from: what the groups
// handled in each step, and their highest backlog in it. ok reports the
// steps with a sample.
func (tl *timeline) stepSamples(from time.Time, n int, step time.Duration) (handled, backlog []uint64, ok []bool) {
	handled, backlog, ok = make([]uint64, n), make([]uint64, n), make([]bool, n)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, s := range tl.samples {
		if s.at.Before(from) {
			continue
		}
		i := int(s.at.Sub(from) / step)
		if i < 0 || i >= n {
			continue
		}
		if s.valid {
			handled[i] += s.handled
		}
		var b uint64
		for _, g := range s.groups {
			b += g.backlog
		}
		backlog[i], ok[i] = max(backlog[i], b), true // the step's peak
	}
	return handled, backlog, ok
}

// since is when the first sample was taken, zero before any.
func (tl *timeline) since() time.Time {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.samples) == 0 {
		return time.Time{}
	}
	return tl.samples[0].at
}
