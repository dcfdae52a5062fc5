package handlers_test

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// BenchmarkRules measures the processor end to end on an embedded server,
// a backlog of b.N alerts handled by 16 workers through handlers.Rules whose
// action prints to io.Discard, with and without conditions and suppression.
// The ratios to "plain" are in docs/performance.md.
//
//   - plain: one entry, no condition.
//   - conditions: the alert passes two filter entries' conditions
//     (severity set, labels, anchored regexp, status) before the one that
//     takes it.
//   - suppress-new: conditions, and every alert opens a window of its own
//     (one KV create per alert).
//   - suppress-repeats: conditions, and every alert after the first is a
//     repeat of one window (a KV create that fails, then a read).
func BenchmarkRules(b *testing.B) {
	when := handlers.When{
		Severity:    []string{stream.SeverityCritical, stream.SeverityError},
		Labels:      map[string]string{"team": "db"},
		LabelsMatch: map[string]string{"instance": "db-[0-9]+"},
		Status:      stream.StatusFiring,
	}
	filters := []handlers.Entry{
		{On: "alerts.>", Name: "drop-info", When: handlers.When{Severity: []string{stream.SeverityInfo}}},
		{On: "alerts.>", Name: "drop-web", When: handlers.When{Labels: map[string]string{"team": "web"}}},
	}
	suppress := &handlers.SuppressConfig{Key: "{{.Labels.instance}}", For: time.Hour}
	cases := []struct {
		name     string
		entries  []handlers.Entry
		instance func(i int) string
	}{
		{"plain", []handlers.Entry{{On: "alerts.>", Print: true}}, strconv.Itoa},
		{"conditions", append(filters, handlers.Entry{On: "alerts.>", When: when, Print: true}), strconv.Itoa},
		{"suppress-new", append(filters, handlers.Entry{On: "alerts.>", When: when, Suppress: suppress, Print: true}), strconv.Itoa},
		{"suppress-repeats", append(filters, handlers.Entry{On: "alerts.>", When: when, Suppress: suppress, Print: true}), func(int) string { return "1" }},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			conn, topo := streamtest.NewTopology(b)
			publishAlerts(b, conn, b.N, bc.instance)
			var settled atomic.Int64
			done := make(chan struct{})
			r, err := handlers.NewRules(handlers.Config{Handlers: bc.entries}, handlers.Deps{Out: io.Discard})
			if err != nil {
				b.Fatal(err)
			}
			p, err := processor.New(conn.JS, r, processor.Config{
				Topology: topo,
				Workers:  16,
				OnOutcome: func(res processor.Result) {
					if res.Outcome != processor.OutcomeAck && res.Outcome != processor.OutcomeDrop {
						b.Errorf("alert %d: %s: %v", res.Message.Sequence(), res.Outcome, res.Err)
					}
					if settled.Add(1) == int64(b.N) {
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
			go func() { stopped <- p.Run(ctx) }()
			<-done
			b.StopTimer()
			cancel()
			if err := <-stopped; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
		})
	}
}

// publishAlerts stores n critical db alerts, the i-th with label
// instance=db-<instance(i)>.
func publishAlerts(b *testing.B, conn *stream.Conn, n int, instance func(int) string) {
	b.Helper()
	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{})
	msgs := make([]*nats.Msg, 0, 1000)
	for i := 0; i < n; i += cap(msgs) {
		msgs = msgs[:0]
		for j := i; j < min(i+cap(msgs), n); j++ {
			data := fmt.Sprintf(`{"severity":"critical","summary":"disk 95%%","labels":{"team":"db","instance":"db-%s"}}`, instance(j))
			msgs = append(msgs, &nats.Msg{Subject: "alerts.disk", Data: []byte(data),
				Header: nats.Header{nats.MsgIdHdr: []string{"bench-" + strconv.Itoa(j)}}})
		}
		if failed := pub.PublishBatch(context.Background(), msgs, nil); failed > 0 {
			b.Fatalf("%d publishes failed", failed)
		}
	}
}
