package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// ReplayConfig selects the alerts of the history that Replay runs through a
// handler again. The zero value replays the whole history.
type ReplayConfig struct {
	// Topology names the alert stream. Defaults to stream.Topology's
	// defaults.
	Topology stream.Topology
	// FilterSubjects restricts the replay to some subjects, with
	// wildcards. Defaults to the topology's alert subjects.
	FilterSubjects []string
	// StartSeq is the first alert stream sequence to replay. Exclusive with
	// StartTime. Defaults to the oldest alert kept.
	StartSeq uint64
	// StartTime replays the alerts stored at or after it.
	StartTime time.Time
	// Until stops before the first alert stored after it. Defaults to no
	// bound: the replay ends at the last alert stored when it began.
	Until time.Time
	// OnStart, if set, is called once before the first alert with the
	// number of alerts the replay will handle at most, e.g. to size a
	// progress bar.
	OnStart func(pending uint64)
	// OnResult, if set, is called after each alert, from the goroutine that
	// called Replay, with the handler's error (nil on success).
	OnResult func(ReplayResult)
}

// ReplayResult is the outcome of one replayed alert.
type ReplayResult struct {
	Message  *Message
	Err      error
	Duration time.Duration
}

// ReplayStats sums up a replay.
type ReplayStats struct {
	// Replayed counts the alerts handed to the handler.
	Replayed int `json:"replayed"`
	// OK counts those it handled (ErrDrop included), Failed the others.
	OK     int `json:"ok"`
	Failed int `json:"failed"`
	// FirstSeq and LastSeq are the alert stream sequences of the first and last
	// alert replayed; 0 if none was.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// Duration is the wall time of the replay.
	Duration time.Duration `json:"duration_ns"`
}

// Replay runs the alerts of the alert stream that cfg selects through h,
// one at a time and in order, for instance a Router built from the same
// handlers config that `reactor run` uses.
//
// It reads the alert stream with an ordered consumer, so it never touches
// any consumer group: live processing goes on undisturbed, and
// a replayed alert that fails is counted and reported through OnResult, never
// retried or dead-lettered. Handlers see the message as the alert stream
// stored it: its stream is the alert stream, its sequence the stream's,
// and Delivered is 1. A handler that defers (Defer) is called again after
// the delay it asked for. A handler panic is recovered and counted as a failure.
//
// Replay returns when the range is done or ctx is cancelled; the stats count
// what was replayed either way.
func Replay(ctx context.Context, js jetstream.JetStream, h Handler, cfg ReplayConfig) (ReplayStats, error) {
	start := time.Now()
	var st ReplayStats
	cfg.Topology = cfg.Topology.WithDefaults()
	for _, f := range cfg.FilterSubjects {
		if _, err := ParsePattern(f); err != nil {
			return st, fmt.Errorf("replay: subject filter: %w", err)
		}
	}
	filters := cfg.FilterSubjects
	if len(filters) == 0 {
		filters = cfg.Topology.Subjects // not the redrive copies, whose originals are there
	}
	r, err := stream.NewReader(ctx, js, cfg.Topology.Alerts, stream.ReadOptions{
		FilterSubjects: filters,
		StartSeq:       cfg.StartSeq,
		StartTime:      cfg.StartTime,
		Until:          cfg.Until,
	})
	if err != nil {
		return st, fmt.Errorf("replay: %w", err)
	}
	defer r.Close()
	if cfg.OnStart != nil {
		cfg.OnStart(r.Pending())
	}
	h = Recover()(h)
	for {
		sm, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			st.Duration = time.Since(start)
			return st, nil
		}
		if err != nil {
			st.Duration = time.Since(start)
			return st, fmt.Errorf("replay: %w", err)
		}
		m := NewMessage(sm.Subject, sm.Data, sm.Header, MessageInfo{
			Stream:    sm.Stream,
			Sequence:  sm.Sequence,
			Delivered: 1,
			Timestamp: sm.Time,
		})
		t0 := time.Now()
		herr := h.Process(stream.ExtractTrace(ctx, sm.Header), m)
		for d := (*DeferError)(nil); errors.As(herr, &d); {
			// A limit is full: wait as the processor would, then again.
			select {
			case <-ctx.Done():
				st.Duration = time.Since(start)
				return st, ctx.Err()
			case <-time.After(d.After):
			}
			herr = h.Process(stream.ExtractTrace(ctx, sm.Header), m)
		}
		if errors.Is(herr, ErrDrop) {
			herr = nil
		}
		st.Replayed++
		if herr == nil {
			st.OK++
		} else {
			st.Failed++
		}
		if st.FirstSeq == 0 {
			st.FirstSeq = sm.Sequence
		}
		st.LastSeq = sm.Sequence
		if cfg.OnResult != nil {
			cfg.OnResult(ReplayResult{Message: m, Err: herr, Duration: time.Since(t0)})
		}
	}
}
