package console

import (
	"context"
	"errors"
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

// scanned is one page of a window (stream.ReadNewest's).
type scanned = stream.NewestPage

// scanBack reads w backwards, newest first (see stream.ReadNewest): a page
// of the newest alerts without filters reads exactly the page; a filter
// the server cannot apply reads at most budget sequences.
func scanBack(ctx context.Context, c *Console, w window) (scanned, error) {
	if w.hi < w.lo || w.hi == 0 {
		return scanned{To: w.hi}, nil
	}
	return stream.ReadNewest(ctx, c.cfg.JS, w.stream, stream.NewestOptions{
		FilterSubjects: w.filter, From: w.lo, Before: w.hi + 1,
		Want: w.want, Budget: w.budget, Matches: w.matches,
	})
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
		seq, err := stream.FirstSeqAt(ctx, c.cfg.JS, name, since)
		if errors.Is(err, stream.ErrNoMessage) {
			return 0, 0, false, nil
		}
		if err != nil {
			return 0, 0, false, err
		}
		lo = max(lo, seq)
	}
	if !until.IsZero() {
		seq, err := stream.FirstSeqAt(ctx, c.cfg.JS, name, until.Add(time.Nanosecond))
		switch {
		case errors.Is(err, stream.ErrNoMessage):
		case err != nil:
			return 0, 0, false, err
		default:
			hi = min(hi, seq-1)
		}
	}
	return lo, hi, hi >= lo && hi > 0, nil
}
