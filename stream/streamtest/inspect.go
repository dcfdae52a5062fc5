package streamtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MsgIDs reads every message of a Limits stream (History, DLQ) with an
// ordered consumer and counts them by Nats-Msg-Id: an id seen twice was
// stored twice. Messages without an id count under "". On a cluster whose
// stream leader just changed, the read starts over until it goes through.
func MsgIDs(t testing.TB, js jetstream.JetStream, streamName string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		ids, err := readMsgIDs(ctx, js, streamName)
		if err == nil {
			return ids
		}
		if ctx.Err() != nil || !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.Fatalf("streamtest: %v", err)
		}
		// The ordered consumer lived on a leader that moved: read again.
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readMsgIDs(ctx context.Context, js jetstream.JetStream, streamName string) (map[string]int, error) {
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", streamName, err)
	}
	want := s.CachedInfo().State.Msgs
	ids := make(map[string]int, want)
	if want == 0 {
		return ids, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", streamName, err)
	}
	var seen uint64
	for seen < want {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", streamName, err)
		}
		for msg := range batch.Messages() {
			ids[msg.Headers().Get(nats.MsgIdHdr)]++
			seen++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("read %s after %d of %d messages: %w", streamName, seen, want, err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %d of %d messages after 60s", streamName, seen, want)
		}
	}
	return ids, nil
}

// StoredMsgs returns every message of the stream that stores subject, first
// to last.
func StoredMsgs(t testing.TB, js jetstream.JetStream, subject string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name, err := js.StreamNameBySubject(ctx, subject)
	if err != nil {
		t.Fatalf("streamtest: stream of %s: %v", subject, err)
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("streamtest: stream %s: %v", name, err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := s.CachedInfo().State.FirstSeq; seq <= s.CachedInfo().State.LastSeq && seq > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("streamtest: stream %s message %d: %v", name, seq, err)
		}
		out = append(out, m)
	}
	return out
}

// StreamMsgs is the number of messages in a stream, or -1 if its info cannot
// be had right now (no leader, say).
func StreamMsgs(js jetstream.JetStream, streamName string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		return -1
	}
	return int64(s.CachedInfo().State.Msgs)
}

// ConsumerPending returns what a consumer still owes: messages not yet
// delivered and deliveries not yet acknowledged. ok is false if its info
// cannot be had right now.
func ConsumerPending(js jetstream.JetStream, streamName, consumer string) (pending uint64, ackPending int, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, streamName, consumer)
	if err != nil {
		return 0, 0, false
	}
	info := c.CachedInfo()
	return info.NumPending, info.NumAckPending, true
}
