package handlers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// CountsStream is where every process of every group adds up what its
// rules filtered, suppressed and limited, so that `reactor status`, another
// process, can show them: one counter (nats-server 2.12 or later) per
// group, entry and kind, on CountsSubjectPrefix.<group>.<entry>.<kind>,
// group and entry in unpadded base64url. Each process adds what it counted
// since its last flush (while a Processor runs its Rules, see Rules.Start);
// a crash loses at most one flush interval of counts. It is created on the first flush.
const CountsStream = "REACTOR_RULE_COUNTS"

// CountsSubjectPrefix prefixes the subjects of CountsStream.
const CountsSubjectPrefix = "reactor.rules"

// countsFlushEvery is how often `reactor run` adds its counts to
// CountsStream.
const countsFlushEvery = 5 * time.Second

// The kinds of counts.
const (
	CountFiltered   = "filtered"
	CountSuppressed = "suppressed"
	CountLimited    = "limited"
)

// EntryCount is what an entry filtered, suppressed and limited (limited
// counts deferrals: an alert may wait more than once).
type EntryCount struct {
	Group      string `json:"group,omitempty"`
	Entry      string `json:"entry"`
	Filtered   uint64 `json:"filtered"`
	Suppressed uint64 `json:"suppressed"`
	Limited    uint64 `json:"limited"`
}

// Counts are the counts of one Rules, in this process.
type Counts struct {
	mu      sync.Mutex // guards flushed, and Flush
	names   []string
	entries map[string]*entryCounts
}

type entryCounts struct {
	filtered, suppressed, limited atomic.Uint64
	flushed                       [3]uint64
}

func newCounts() *Counts { return &Counts{entries: make(map[string]*entryCounts)} }

func (c *Counts) entry(name string) *entryCounts {
	e := &entryCounts{}
	c.names = append(c.names, name)
	c.entries[name] = e
	return e
}

func (e *entryCounts) load() [3]uint64 {
	return [3]uint64{e.filtered.Load(), e.suppressed.Load(), e.limited.Load()}
}

var countKinds = [3]string{CountFiltered, CountSuppressed, CountLimited}

// Snapshot returns the counts of every entry, in the order of the config.
func (c *Counts) Snapshot() []EntryCount {
	out := make([]EntryCount, 0, len(c.names))
	for _, name := range c.names {
		v := c.entries[name].load()
		out = append(out, EntryCount{Entry: name, Filtered: v[0], Suppressed: v[1], Limited: v[2]})
	}
	return out
}

// publishCounts adds rs's counts to CountsStream, in st's group, every
// interval until ctx is done, then once more. Failures are logged and
// retried at the next tick.
func (rs *Rules) publishCounts(ctx context.Context, st *groupBucket, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stream.RequestTimeoutDefault)
			defer cancel()
			if err := rs.counts.flush(fctx, st.js, st.group, st.replicas); err != nil {
				rs.log.Warn("rule counts not stored", "stream", CountsStream, "err", err)
			}
			return
		case <-t.C:
			if err := rs.counts.flush(ctx, st.js, st.group, st.replicas); err != nil {
				rs.log.Warn("rule counts not stored", "stream", CountsStream, "err", err)
			}
		}
	}
}

// flush adds what was counted since the last flush to CountsStream.
func (c *Counts) flush(ctx context.Context, js jetstream.JetStream, group string, replicas int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	created := false
	for _, name := range c.names {
		e := c.entries[name]
		now := e.load()
		for k, kind := range countKinds {
			delta := now[k] - e.flushed[k]
			if delta == 0 {
				continue
			}
			msg := nats.NewMsg(countSubject(group, name, kind))
			msg.Header.Set(counterIncrHeader, "+"+strconv.FormatUint(delta, 10))
			_, err := js.PublishMsg(ctx, msg)
			if errors.Is(err, jetstream.ErrNoStreamResponse) && !created {
				if err = ensureCountsStream(ctx, js, replicas); err == nil {
					created = true
					_, err = js.PublishMsg(ctx, msg)
				}
			}
			if err != nil {
				return fmt.Errorf("add %s of entry %q: %w", kind, name, err)
			}
			e.flushed[k] = now[k]
		}
	}
	return nil
}

// counterIncrHeader asks a counter stream to add to the subject's total.
const counterIncrHeader = "Nats-Incr"

var b64 = base64.RawURLEncoding

func countSubject(group, entry, kind string) string {
	return strings.Join([]string{CountsSubjectPrefix, b64.EncodeToString([]byte(group)), b64.EncodeToString([]byte(entry)), kind}, ".")
}

func ensureCountsStream(ctx context.Context, js jetstream.JetStream, replicas int) error {
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:            CountsStream,
		Description:     "reactor: filtered, suppressed and limited alerts per group and rule entry",
		Subjects:        []string{CountsSubjectPrefix + ".>"},
		AllowMsgCounter: true,
		AllowDirect:     true,
		Storage:         jetstream.FileStorage,
		Replicas:        max(replicas, 1),
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil // another process was first
	}
	if err != nil {
		return fmt.Errorf("create stream %q: %w", CountsStream, err)
	}
	return nil
}

// ReadCounts returns the totals of CountsStream, every group's, sorted by
// group then entry; none if the stream does not exist yet.
func ReadCounts(ctx context.Context, js jetstream.JetStream) ([]EntryCount, error) {
	s, err := js.Stream(ctx, CountsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read rule counts: %w", err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(CountsSubjectPrefix+".>"))
	if err != nil {
		return nil, fmt.Errorf("read rule counts: %w", err)
	}
	byKey := make(map[[2]string]*EntryCount)
	for subj := range info.State.Subjects {
		rest, _ := strings.CutPrefix(subj, CountsSubjectPrefix+".")
		parts := strings.Split(rest, ".")
		if len(parts) != 3 {
			continue
		}
		g, err1 := b64.DecodeString(parts[0])
		e, err2 := b64.DecodeString(parts[1])
		if err1 != nil || err2 != nil {
			continue
		}
		msg, err := s.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			return nil, fmt.Errorf("read rule counts %s: %w", subj, err)
		}
		var v struct {
			Val string `json:"val"`
		}
		if err := json.Unmarshal(msg.Data, &v); err != nil {
			return nil, fmt.Errorf("read rule counts %s: %w", subj, err)
		}
		n, _ := strconv.ParseUint(v.Val, 10, 64)
		key := [2]string{string(g), string(e)}
		ec := byKey[key]
		if ec == nil {
			ec = &EntryCount{Group: key[0], Entry: key[1]}
			byKey[key] = ec
		}
		switch parts[2] {
		case CountFiltered:
			ec.Filtered = n
		case CountSuppressed:
			ec.Suppressed = n
		case CountLimited:
			ec.Limited = n
		}
	}
	out := make([]EntryCount, 0, len(byKey))
	for _, ec := range byKey {
		out = append(out, *ec)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		return out[i].Entry < out[j].Entry
	})
	return out, nil
}
