package stream_test

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// benchMsgs returns n messages of 256 bytes on alerts.bench, each with a
// Nats-Msg-Id.
func benchMsgs(n int) []*nats.Msg {
	payload := make([]byte, 256)
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		msgs[i] = &nats.Msg{Subject: "alerts.bench", Data: payload,
			Header: nats.Header{nats.MsgIdHdr: []string{"bench-" + strconv.Itoa(i)}}}
	}
	return msgs
}

// cpuTime is the CPU time the process has used so far, user and system,
// embedded server included.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPublishBatch stores b.N alerts of 256 bytes on an embedded
// server in chunks of 1000, as reactor bench publishes as fast as it can,
// and of 20, as it publishes 20,000 alerts a second, each chunk waiting for
// its PubAcks; with CPU time (server included) and allocations per alert:
// "raw" is bare nats.go on a connection of its own with the library's
// defaults (PublishMsgAsync, then each future awaited), "publisher" is
// stream.Publisher.PublishBatch on reactor's connection. Compare the two
// within one go test run, over several runs: the machine's other work
// moves both.
func BenchmarkPublishBatch(b *testing.B) {
	for _, chunk := range []int{1000, 20} {
		b.Run("chunk="+strconv.Itoa(chunk)+"/raw", func(b *testing.B) {
			js := rawJetStream(b)
			runPublishBench(b, chunk, func(msgs []*nats.Msg) int {
				futures := make([]jetstream.PubAckFuture, 0, len(msgs))
				failed := 0
				for _, m := range msgs {
					f, err := js.PublishMsgAsync(m)
					if err != nil {
						failed++
						continue
					}
					futures = append(futures, f)
				}
				for _, f := range futures {
					select {
					case <-f.Ok():
					case <-f.Err():
						failed++
					}
				}
				return failed
			})
		})
		b.Run("chunk="+strconv.Itoa(chunk)+"/publisher", func(b *testing.B) {
			conn, _ := streamtest.NewTopology(b)
			pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{})
			runPublishBench(b, chunk, func(msgs []*nats.Msg) int {
				return pub.PublishBatch(context.Background(), msgs, nil)
			})
		})
	}
}

// rawJetStream is bare nats.go on a fresh topology's server: a connection
// and a JetStream context of its own, with the library's defaults.
func rawJetStream(b *testing.B) jetstream.JetStream {
	conn, _ := streamtest.NewTopology(b)
	nc, err := nats.Connect("", nats.InProcessServer(conn.InProcess))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	return js
}

func runPublishBench(b *testing.B, chunk int, publish func([]*nats.Msg) int) {
	msgs := benchMsgs(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < len(msgs); i += chunk {
		if failed := publish(msgs[i:min(i+chunk, len(msgs))]); failed > 0 {
			b.Fatalf("%d publishes failed", failed)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/alert")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
}

// BenchmarkPublish stores b.N alerts of 256 bytes one at a time, each
// waiting for its PubAck: "raw" is nats.go's PublishMsg on a connection of
// its own, "publisher" is stream.Publisher.Publish, as reactor send and
// the dead-lettering use it.
func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		js := rawJetStream(b)
		runPublishBench(b, 1000, func(msgs []*nats.Msg) int {
			failed := 0
			for _, m := range msgs {
				if _, err := js.PublishMsg(ctx, m); err != nil {
					failed++
				}
			}
			return failed
		})
	})
	b.Run("publisher", func(b *testing.B) {
		conn, _ := streamtest.NewTopology(b)
		pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{})
		runPublishBench(b, 1000, func(msgs []*nats.Msg) int {
			failed := 0
			for _, m := range msgs {
				if _, err := pub.Publish(ctx, m); err != nil {
					failed++
				}
			}
			return failed
		})
	})
}
