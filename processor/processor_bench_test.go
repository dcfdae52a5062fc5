package processor_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// backlog starts a server with the default topology and n queued alerts of
// 256 bytes, waiting until the work stream has sourced them all.
func backlog(b *testing.B, n int) (*stream.Conn, stream.Topology) {
	b.Helper()
	conn, topo := streamtest.NewTopology(b)
	payload := make([]byte, 256)
	msgs := make([]*nats.Msg, 0, 1000)
	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{})
	ctx := context.Background()
	for i := 0; i < n; i += cap(msgs) {
		msgs = msgs[:0]
		for j := i; j < min(i+cap(msgs), n); j++ {
			msgs = append(msgs, &nats.Msg{Subject: "alerts.bench", Data: payload,
				Header: nats.Header{nats.MsgIdHdr: []string{"bench-" + strconv.Itoa(j)}}})
		}
		if failed := pub.PublishBatch(ctx, msgs, nil); failed > 0 {
			b.Fatalf("%d publishes failed", failed)
		}
	}
	streamtest.Eventually(b, 30*time.Second, func() bool {
		s, err := conn.JS.Stream(ctx, topo.Alerts)
		return err == nil && s.CachedInfo().State.Msgs == uint64(n)
	}, "alert stream holds %d alerts", n)
	return conn, topo
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

// BenchmarkProcessor measures the processor end to end on an embedded
// server: a backlog of b.N alerts handled by a no-op handler and acked
// (with DoubleAck in the last case), with allocations and CPU time (server
// included) per alert. `reactor bench --raw` compares it with bare nats.go.
func BenchmarkProcessor(b *testing.B) {
	for _, c := range []struct {
		workers   int
		doubleAck bool
	}{{1, false}, {16, false}, {16, true}} {
		name := "workers=" + strconv.Itoa(c.workers)
		if c.doubleAck {
			name += ",double-ack"
		}
		b.Run(name, func(b *testing.B) {
			conn, topo := backlog(b, b.N)
			var acked atomic.Int64
			done := make(chan struct{})
			r := processor.NewRouter()
			r.On("alerts.>", func(context.Context, *processor.Message) error { return nil })
			p, err := processor.New(conn.JS, r, processor.Config{
				Topology:  topo,
				Workers:   c.workers,
				DoubleAck: c.doubleAck,
				// As reactor run, which exports no traces.
				TracerProvider: noop.NewTracerProvider(),
				OnOutcome: func(processor.Result) {
					if acked.Add(1) == int64(b.N) {
						close(done)
					}
				},
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan error, 1)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			go func() { stopped <- p.Run(ctx) }()
			<-done
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/alert")
			cancel()
			if err := <-stopped; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
		})
	}
}
