package bench

import (
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// headerSent carries the publish time in unix nanoseconds.
const headerSent = "Reactor-Bench-Sent"

// maxLostIDs bounds the lost ids listed in a report.
const maxLostIDs = 100

// latencyShards spreads latency recording over histograms with a lock each,
// so that workers rarely wait for one another.
const latencyShards = 8

// tracker counts what happened to every id of one phase, in each of its
// consumer groups. Ids are "<prefix><index>", index in [0, n); an alert is
// settled once per group.
type tracker struct {
	prefix string
	n      int
	groups int

	pubOK   []bool         // written once per index by its publisher, read after publishing
	settles []atomic.Int32 // per group and index: g*n + index

	published    atomic.Int64
	pubFailed    atomic.Int64
	settled      atomic.Int64 // ids settled at least once, per group
	acked        atomic.Int64 // ids whose first settlement was an ack, per group
	dead         atomic.Int64 // ids whose first settlement was a dead letter, per group
	redeliveries atomic.Int64
	foreign      atomic.Int64 // messages without an id of this phase

	firstPublish atomic.Int64 // unix nanos
	lastSettle   atomic.Int64 // unix nanos
	maxGap       atomic.Int64 // longest time between two settlements, nanos

	hist [latencyShards]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
		_  [40]byte // keep the shards' locks on separate cache lines
	}
}

func newTracker(prefix string, n, groups int) *tracker {
	t := &tracker{prefix: prefix, n: n, groups: groups, pubOK: make([]bool, n), settles: make([]atomic.Int32, n*groups)}
	for i := range t.hist {
		// 1µs to 10 minutes, 3 significant digits.
		t.hist[i].h = hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
	}
	return t
}

func (t *tracker) id(i int) string { return t.prefix + strconv.Itoa(i) }

// index parses an id of this phase; ok is false for any other id.
func (t *tracker) index(id string) (int, bool) {
	rest, found := strings.CutPrefix(id, t.prefix)
	if !found {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= t.n {
		return 0, false
	}
	return i, true
}

// sending records the time of the first publish.
func (t *tracker) sending(now time.Time) {
	t.firstPublish.CompareAndSwap(0, now.UnixNano())
}

// publishDone records a PubAck (err == nil) or a failed publish of index i.
func (t *tracker) publishDone(i int, err error) {
	if err != nil {
		t.pubFailed.Add(1)
		return
	}
	t.pubOK[i] = true
	t.published.Add(1)
}

// delivered records a delivery, and whether it was a redelivery.
func (t *tracker) delivered(n int) {
	if n > 1 {
		t.redeliveries.Add(1)
	}
}

// settle records that group g acked (dead == false) or dead-lettered the
// message with id, at now; sent is its headerSent value.
func (t *tracker) settle(g int, id, sent string, dead bool, now time.Time) {
	i, ok := t.index(id)
	if !ok {
		t.foreign.Add(1)
		return
	}
	nanos := now.UnixNano()
	for {
		last := t.lastSettle.Load()
		if nanos <= last {
			break
		}
		if t.lastSettle.CompareAndSwap(last, nanos) {
			if gap := nanos - last; last > 0 && gap > t.maxGap.Load() {
				t.maxGap.Store(gap) // racy max: a diagnostic, off by a little at worst
			}
			break
		}
	}
	if t.settles[g*t.n+i].Add(1) == 1 {
		if dead {
			t.dead.Add(1)
		} else {
			t.acked.Add(1)
		}
		t.settled.Add(1)
	}
	if dead {
		return
	}
	at, err := strconv.ParseInt(sent, 10, 64)
	if err != nil {
		return
	}
	us := max((nanos-at)/int64(time.Microsecond), 1)
	s := &t.hist[i%latencyShards]
	s.mu.Lock()
	if err := s.h.RecordValue(us); err != nil {
		_ = s.h.RecordValue(s.h.HighestTrackableValue())
	}
	s.mu.Unlock()
}

// unsettled reports whether some id published with a PubAck has not been
// settled yet by every group. Call it only after publishing is done.
func (t *tracker) unsettled() bool {
	for i, ok := range t.pubOK {
		for g := range t.groups {
			if ok && t.settles[g*t.n+i].Load() == 0 {
				return true
			}
		}
	}
	return false
}

// wanted is the number of settlements that settle every id published so
// far in every group.
func (t *tracker) wanted() int64 { return t.published.Load() * int64(t.groups) }

// fill completes p with the tracker's counts. Call it after publishing and
// processing stopped.
func (t *tracker) fill(p *Phase) {
	p.Msgs = t.n
	p.Published = int(t.published.Load())
	p.PublishErrors = int(t.pubFailed.Load())
	p.Acked = int(t.acked.Load())
	p.DeadLettered = int(t.dead.Load())
	p.Redeliveries = int(t.redeliveries.Load())
	p.MaxSettleGap = math.Round(float64(t.maxGap.Load())/1e3) / 1000
	for g := range t.groups {
		for i, ok := range t.pubOK {
			n := t.settles[g*t.n+i].Load()
			if ok && n == 0 {
				p.Lost++
				if len(p.LostIDs) < maxLostIDs {
					id := t.id(i)
					if t.groups > 1 {
						id += "@" + strconv.Itoa(g+1)
					}
					p.LostIDs = append(p.LostIDs, id)
				}
			}
			if n > 1 {
				p.Duplicates++
			}
		}
	}
	all := hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
	for i := range t.hist {
		s := &t.hist[i]
		s.mu.Lock()
		all.Merge(s.h)
		s.mu.Unlock()
	}
	ms := func(us int64) float64 { return math.Round(float64(us)) / 1000 }
	if all.TotalCount() > 0 {
		p.Latency = Latency{
			P50:  ms(all.ValueAtQuantile(50)),
			P90:  ms(all.ValueAtQuantile(90)),
			P99:  ms(all.ValueAtQuantile(99)),
			P999: ms(all.ValueAtQuantile(99.9)),
			Max:  ms(all.Max()),
		}
	}
}

// injected counts the published alerts picked by each kind of failure,
// once per group.
func (t *tracker) injected(inj injector) Injected {
	var out Injected
	for i, ok := range t.pubOK {
		if !ok {
			continue
		}
		switch inj.kind(i) {
		case kindFail:
			out.Failures += t.groups
		case kindPanic:
			out.Panics += t.groups
		case kindPermanent:
			out.Permanent += t.groups
		}
	}
	return out
}
