package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// readNewest returns the last n messages of stream name that match filter
// (every one when n <= 0), newest first, and how many match in all. It
// reads backwards in ranges that double, so the newest few of a long
// stream cost a few short reads, not a read of the whole stream.
func readNewest(ctx context.Context, js jetstream.JetStream, name string, filter []string, n int) ([]StoredMsg, uint64, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, 0, fmt.Errorf("read stream %s: %w", name, err)
	}
	state := s.CachedInfo().State
	if state.Msgs == 0 {
		return nil, 0, nil
	}
	total := state.Msgs
	if len(filter) > 0 && n > 0 {
		r, err := NewReader(ctx, js, name, ReadOptions{FilterSubjects: filter})
		if err != nil {
			return nil, 0, err
		}
		total = r.Pending()
		r.Close()
	}
	var out []StoredMsg
	size := state.LastSeq - state.FirstSeq + 1 // n <= 0: the whole stream at once
	if n > 0 {
		size = uint64(n)
	}
	for hi := state.LastSeq; ; {
		lo := state.FirstSeq
		if hi-lo+1 > size {
			lo = hi - size + 1
		}
		batch, err := readRange(ctx, js, name, filter, lo, hi)
		if err != nil {
			return out, total, err
		}
		for i := len(batch) - 1; i >= 0 && (n <= 0 || len(out) < n); i-- {
			out = append(out, batch[i])
		}
		if (n > 0 && len(out) >= n) || lo <= state.FirstSeq {
			break
		}
		hi, size = lo-1, size*2
	}
	if n <= 0 || uint64(len(out)) > total {
		total = uint64(len(out))
	}
	return out, total, nil
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
