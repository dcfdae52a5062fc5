package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StoredMsg is a message as a stream stored it.
type StoredMsg struct {
	Stream   string
	Subject  string
	Data     []byte
	Header   nats.Header
	Sequence uint64
	// Time is when the stream stored the message.
	Time time.Time
}

// ReadOptions selects the messages a Reader returns. The zero value reads
// the whole stream.
type ReadOptions struct {
	// FilterSubjects restricts the read to these subjects; wildcards are
	// allowed. Defaults to every subject.
	FilterSubjects []string
	// StartSeq is the first sequence to read. Defaults to the first
	// message. Exclusive with StartTime.
	StartSeq uint64
	// StartTime starts at the first message stored at or after it.
	StartTime time.Time
	// Until ends the read before the first message stored after it.
	// Defaults to no bound: the read ends at the stream's last message at
	// the time NewReader was called.
	Until time.Time
	// EndSeq ends the read after this sequence. Defaults to the stream's
	// last sequence at the time NewReader was called.
	EndSeq uint64
}

// idleCheck is how long Next waits for a message before it asks the server
// whether any is left: messages that matched when the read began may have
// expired or been deleted since.
const idleCheck = 2 * time.Second

// Reader reads a bounded range of a stream in order, with an ordered
// consumer: an ephemeral, unacknowledged consumer that the server does not
// share with anyone, so reading never disturbs the durable consumers of the
// stream. The range ends at the stream's last message when the Reader was
// made, so a read of a busy stream terminates.
type Reader struct {
	js      jetstream.JetStream
	stream  string
	opts    ReadOptions
	cons    jetstream.Consumer
	iter    jetstream.MessagesContext
	last    uint64
	pending uint64
	done    bool
}

// NewReader starts reading stream name. Close it when done.
func NewReader(ctx context.Context, js jetstream.JetStream, name string, opts ReadOptions) (*Reader, error) {
	if opts.StartSeq > 0 && !opts.StartTime.IsZero() {
		return nil, errors.New("stream: read from a sequence or from a time, not both")
	}
	if !opts.Until.IsZero() && !opts.StartTime.IsZero() && opts.Until.Before(opts.StartTime) {
		return nil, fmt.Errorf("stream: read until %s, before its start %s", opts.Until.Format(time.RFC3339), opts.StartTime.Format(time.RFC3339))
	}
	r := &Reader{js: js, stream: name, opts: opts}
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", name, err)
	}
	state := s.CachedInfo().State
	r.last = state.LastSeq
	if opts.EndSeq > 0 {
		r.last = min(r.last, opts.EndSeq)
	}
	if state.Msgs == 0 || opts.StartSeq > r.last {
		r.done = true
		return r, nil
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    opts.FilterSubjects,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
		NamePrefix:        "reactor_read_" + nats.NewInbox()[len(nats.InboxPrefix):],
	}
	switch {
	case opts.StartSeq > 0:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = opts.StartSeq
	case !opts.StartTime.IsZero():
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		start := opts.StartTime
		cfg.OptStartTime = &start
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", name, err)
	}
	r.cons = cons
	iter, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", name, err)
	}
	r.iter = iter
	info, err := cons.Info(ctx)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("read stream %s: %w", name, err)
	}
	// Delivered counts what the iterator already pulled into its buffer.
	r.pending = info.NumPending + info.Delivered.Consumer
	if r.pending == 0 {
		r.done = true
	}
	return r, nil
}

// Pending is the number of messages the read will return at most: those
// that matched from the start to the end of the stream when the read began.
// With Until, or if messages expire meanwhile, fewer come.
func (r *Reader) Pending() uint64 { return r.pending }

// LastSeq is the stream's last sequence when the read began: the read ends
// there.
func (r *Reader) LastSeq() uint64 { return r.last }

// Next returns the next message, or io.EOF at the end of the range.
func (r *Reader) Next(ctx context.Context) (StoredMsg, error) {
	for !r.done {
		wctx, cancel := context.WithTimeout(ctx, idleCheck)
		msg, err := r.iter.Next(jetstream.NextContext(wctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return StoredMsg{}, context.Cause(ctx)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				info, ierr := r.cons.Info(ctx)
				if ierr == nil && info.NumPending == 0 {
					r.done = true
				}
				continue
			}
			return StoredMsg{}, fmt.Errorf("read stream %s: %w", r.stream, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return StoredMsg{}, fmt.Errorf("read stream %s: %w", r.stream, err)
		}
		seq := meta.Sequence.Stream
		if seq > r.last || (!r.opts.Until.IsZero() && meta.Timestamp.After(r.opts.Until)) {
			r.done = true
			break
		}
		if seq == r.last || meta.NumPending == 0 {
			r.done = true
		}
		return StoredMsg{
			Stream:   r.stream,
			Subject:  msg.Subject(),
			Data:     msg.Data(),
			Header:   msg.Headers(),
			Sequence: seq,
			Time:     meta.Timestamp,
		}, nil
	}
	return StoredMsg{}, io.EOF
}

// Close stops reading and deletes the ephemeral consumer. The server would
// remove it after a minute of inactivity anyway, should Close not run.
func (r *Reader) Close() {
	r.done = true
	if r.iter != nil {
		r.iter.Stop()
		r.iter = nil
	}
	if r.cons == nil {
		return
	}
	if info := r.cons.CachedInfo(); info != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = r.js.DeleteConsumer(ctx, r.stream, info.Name)
		cancel()
	}
	r.cons = nil
}

// NewestOptions selects what ReadNewest returns. The zero value reads the
// whole stream, newest first.
type NewestOptions struct {
	// FilterSubjects restricts the read to these subjects, applied by the
	// server. Defaults to every subject.
	FilterSubjects []string
	// Before reads the sequences below it (a page's Older continues a
	// list). Defaults to the newest.
	Before uint64
	// From and Since stop the read at the lowest sequence From, and at the
	// messages stored before Since. Default to the oldest.
	From  uint64
	Since time.Time
	// Want bounds the messages returned. Defaults to all.
	Want int
	// Matches, if set, keeps the messages it returns true for: a filter the
	// server cannot apply.
	Matches func(StoredMsg) bool
	// Budget bounds the sequences read (a filtered read can go far for a
	// page). Defaults to no bound.
	Budget int
}

// NewestPage is what ReadNewest read.
type NewestPage struct {
	// Msgs are newest first.
	Msgs []StoredMsg
	// Older is the Before of the next page: 0 when the range holds nothing
	// older.
	Older uint64
	// From and To are the sequences read, Limited that the read stopped at
	// its budget rather than on a full page.
	From, To uint64
	Limited  bool
	// Matched counts the messages of From to To that match, returned or
	// not.
	Matched int
}

// ReadNewest reads stream name backwards, newest first, in ranges that
// double: each a bounded read by an ordered consumer that the server filters
// by subject (see Reader). The newest n messages cost a few short reads,
// not a read of the whole stream; a filter the server cannot apply
// (Matches) reads at most Budget sequences.
func ReadNewest(ctx context.Context, js jetstream.JetStream, name string, opts NewestOptions) (NewestPage, error) {
	var out NewestPage
	s, err := js.Stream(ctx, name)
	if err != nil {
		return out, fmt.Errorf("read stream %s: %w", name, err)
	}
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return out, nil
	}
	lo, hi := max(st.FirstSeq, opts.From), st.LastSeq
	if opts.Before > 0 {
		hi = min(hi, opts.Before-1)
	}
	if !opts.Since.IsZero() {
		seq, err := FirstSeqAt(ctx, js, name, opts.Since)
		if errors.Is(err, ErrNoMessage) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		lo = max(lo, seq)
	}
	if hi < lo || hi == 0 {
		return out, nil
	}
	out.To = hi
	chunk := hi - lo + 1 // everything at once when nothing bounds it
	if opts.Want > 0 {
		chunk = uint64(opts.Want)
		if opts.Matches != nil || len(opts.FilterSubjects) > 0 {
			chunk = uint64(max(4*opts.Want, 500))
		}
	}
	budget := uint64(max(opts.Budget, 0))
	for {
		size := min(chunk, hi-lo+1)
		if budget > 0 {
			size = min(size, budget)
		}
		a := hi - size + 1
		batch, err := readRange(ctx, js, name, opts.FilterSubjects, a, hi)
		if err != nil {
			return out, err
		}
		out.From = a
		for i := len(batch) - 1; i >= 0; i-- {
			if opts.Matches != nil && !opts.Matches(batch[i]) {
				continue
			}
			out.Matched++
			if opts.Want <= 0 || len(out.Msgs) < opts.Want {
				out.Msgs = append(out.Msgs, batch[i])
			}
		}
		if budget > 0 {
			budget -= size
		}
		switch {
		case opts.Want > 0 && len(out.Msgs) == opts.Want:
			if last := out.Msgs[len(out.Msgs)-1].Sequence; last > lo {
				out.Older = last
			}
			return out, nil
		case a <= lo:
			return out, nil
		case opts.Budget > 0 && budget == 0:
			out.Older, out.Limited = a, true
			return out, nil
		}
		hi = a - 1
		chunk = min(chunk*2, 8192)
	}
}

// ErrNoMessage means a stream has no message at or after a time.
var ErrNoMessage = errors.New("stream: no message at or after that time")

// FirstSeqAt returns the sequence of the first message of stream name
// stored at or after t, one request to the server (which finds it by time,
// not by a scan). It returns ErrNoMessage when there is none.
func FirstSeqAt(ctx context.Context, js jetstream.JetStream, name string, t time.Time) (uint64, error) {
	req, _ := json.Marshal(struct {
		StartTime time.Time `json:"start_time"`
		NextFor   string    `json:"next_by_subj"`
	}{t.UTC(), ">"})
	msg, err := js.Conn().RequestWithContext(ctx, apiPrefix(js)+"STREAM.MSG.GET."+name, req)
	if err != nil {
		return 0, fmt.Errorf("find %s's first message at %s: %w", name, t.Format(time.RFC3339), err)
	}
	var resp struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("find %s's first message at %s: %w", name, t.Format(time.RFC3339), err)
	}
	switch {
	case resp.Error != nil && resp.Error.Code == 404:
		return 0, ErrNoMessage
	case resp.Error != nil:
		return 0, fmt.Errorf("find %s's first message at %s: %s", name, t.Format(time.RFC3339), resp.Error.Description)
	case resp.Message == nil:
		return 0, ErrNoMessage
	}
	return resp.Message.Seq, nil
}

// apiPrefix is the JetStream API prefix js sends its requests to.
func apiPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return "$JS.API."
}

// readRange returns the messages of sequences lo to hi that match filter,
// oldest first.
func readRange(ctx context.Context, js jetstream.JetStream, name string, filter []string, lo, hi uint64) ([]StoredMsg, error) {
	r, err := NewReader(ctx, js, name, ReadOptions{FilterSubjects: filter, StartSeq: lo, EndSeq: hi})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []StoredMsg
	for {
		m, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

func storedFromRaw(streamName string, m *jetstream.RawStreamMsg) StoredMsg {
	return StoredMsg{
		Stream:   streamName,
		Subject:  m.Subject,
		Data:     m.Data,
		Header:   m.Header,
		Sequence: m.Sequence,
		Time:     m.Time,
	}
}
