package console

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/reactor-alerts/reactor/stream"
)

// window is the part of a stream a list page reads: newest first, from hi
// down to lo, at most budget sequences, keeping up to want messages that
// match.
type window struct {
	stream  string
	filter  []string // subjects, matched by the server
	lo, hi  uint64
	want    int
	budget  int
	matches func(stream.StoredMsg) bool // nil keeps every message
}

// scanned is one page of a window.
type scanned struct {
	Msgs []stream.StoredMsg // newest first
	// Older is the sequence to continue from (the next page's "before"),
	// 0 when the window holds nothing older.
	Older uint64
	// From and To are the sequences read, Limited that the page stopped at
	// its budget rather than on a full page.
	From, To uint64
	Limited  bool
	// Matched counts the messages of From to To that match, shown or not.
	Matched int
}

// scanBack reads w backwards in chunks: each chunk is a bounded read of
// sequences [a, hi] by an ordered consumer (stream.Reader), which the server
// filters by subject. A page of the newest alerts without filters reads
// exactly the page; a filter the server cannot apply reads at most budget
// sequences.
func scanBack(ctx context.Context, c *Console, w window) (scanned, error) {
	out := scanned{To: w.hi}
	if w.hi < w.lo || w.hi == 0 {
		return out, nil
	}
	chunk := uint64(w.want)
	if w.matches != nil || len(w.filter) > 0 {
		chunk = uint64(max(4*w.want, 500))
	}
	budget := uint64(w.budget)
	hi := w.hi
	for {
		size := min(chunk, budget, hi-w.lo+1)
		a := hi - size + 1
		batch, err := readRange(ctx, c, w.stream, w.filter, a, hi, w.matches)
		if err != nil {
			return out, err
		}
		out.From = a
		out.Matched += len(batch)
		for i := len(batch) - 1; i >= 0 && len(out.Msgs) < w.want; i-- {
			out.Msgs = append(out.Msgs, batch[i])
		}
		budget -= size
		switch {
		case len(out.Msgs) == w.want:
			if last := out.Msgs[len(out.Msgs)-1].Sequence; last > w.lo {
				out.Older = last
			}
			return out, nil
		case a <= w.lo:
			return out, nil
		case budget == 0:
			out.Older, out.Limited = a, true
			return out, nil
		}
		hi = a - 1
		chunk = min(chunk*2, 8192)
	}
}

// readRange returns the messages of [a, hi] that match, oldest first.
func readRange(ctx context.Context, c *Console, name string, filter []string, a, hi uint64, matches func(stream.StoredMsg) bool) ([]stream.StoredMsg, error) {
	r, err := stream.NewReader(ctx, c.cfg.JS, name, stream.ReadOptions{StartSeq: a, FilterSubjects: filter})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []stream.StoredMsg
	for {
		m, err := r.Next(ctx)
		if errors.Is(err, io.EOF) || err == nil && m.Sequence > hi {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if matches == nil || matches(m) {
			out = append(out, m)
		}
		if m.Sequence == hi {
			return out, nil
		}
	}
}

// bounds turns a time window into sequences of a stream: lo is the first
// stored at or after since, hi the last stored at or before until, capped by
// before (exclusive) when set. ok is false when the window is empty.
func bounds(ctx context.Context, c *Console, name string, since, until time.Time, before uint64) (lo, hi uint64, ok bool, err error) {
	s, err := c.cfg.JS.Stream(ctx, name)
	if err != nil {
		return 0, 0, false, err
	}
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return 0, 0, false, nil
	}
	lo, hi = st.FirstSeq, st.LastSeq
	if before > 0 {
		hi = min(hi, before-1)
	}
	if !since.IsZero() {
		seq, err := firstSeqAt(ctx, c.cfg.JS, name, since)
		if errors.Is(err, errNoMessage) {
			return 0, 0, false, nil
		}
		if err != nil {
			return 0, 0, false, err
		}
		lo = max(lo, seq)
	}
	if !until.IsZero() {
		seq, err := firstSeqAt(ctx, c.cfg.JS, name, until.Add(time.Nanosecond))
		switch {
		case errors.Is(err, errNoMessage):
		case err != nil:
			return 0, 0, false, err
		default:
			hi = min(hi, seq-1)
		}
	}
	return lo, hi, hi >= lo && hi > 0, nil
}
