package bench

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// maxChunk is the batch handed to PublishBatch when publishing as fast as
// possible: large enough to keep the async window busy, small enough to keep
// memory flat.
const maxChunk = 1000

// publish stores t.n alerts on subject from cfg.Publishers goroutines, each
// publishing a contiguous range of indices, paced to cfg.Rate if set. It
// returns when every publish has its PubAck or has failed for good, and the
// time publishing took.
func publish(ctx context.Context, sd side, cfg Config, t *tracker, subject string) time.Duration {
	payload := makePayload(cfg.Size)
	start := time.Now()
	var wg sync.WaitGroup
	for p := range cfg.Publishers {
		lo, hi := p*t.n/cfg.Publishers, (p+1)*t.n/cfg.Publishers
		wg.Go(func() {
			publishRange(ctx, sd, cfg, t, subject, payload, lo, hi, start)
		})
	}
	wg.Wait()
	return time.Since(start)
}

func publishRange(ctx context.Context, sd side, cfg Config, t *tracker, subject string, payload []byte, lo, hi int, start time.Time) {
	chunk := maxChunk
	var every float64 // seconds between two alerts of this publisher
	if cfg.Rate > 0 {
		perPublisher := cfg.Rate / float64(cfg.Publishers)
		every = 1 / perPublisher
		// About a millisecond's worth of alerts per batch, so the pacing
		// stays smooth; each batch waits for its PubAcks.
		chunk = int(min(maxChunk, max(1, math.Ceil(perPublisher/1000))))
	}
	msgs := make([]*nats.Msg, 0, chunk)
	for i := lo; i < hi && ctx.Err() == nil; i += chunk {
		if every > 0 {
			due := start.Add(time.Duration(float64(i-lo) * every * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		msgs = msgs[:0]
		now := time.Now()
		t.sending(now)
		sent := strconv.FormatInt(now.UnixNano(), 10)
		for j := i; j < min(i+chunk, hi); j++ {
			msgs = append(msgs, &nats.Msg{
				Subject: subject,
				Data:    payload,
				Header: nats.Header{
					nats.MsgIdHdr: []string{t.id(j)},
					headerSent:    []string{sent},
				},
			})
		}
		sd.publish(ctx, msgs, func(j int, err error) {
			t.publishDone(i+j, err)
		})
	}
}

// makePayload returns size bytes of printable filler.
func makePayload(size int) []byte {
	const filler = "reactor bench alert payload 0123456789 "
	b := make([]byte, size)
	for i := range b {
		b[i] = filler[i%len(filler)]
	}
	return b
}
