package metrics_test

import (
	"context"
	"log"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/processor/metrics"
	"github.com/reactor-alerts/reactor/stream"
)

// A processor with its metrics on http://127.0.0.1:9464/metrics, /healthz
// and /readyz.
func Example() {
	ctx := context.Background()
	conn, err := stream.Open(ctx, stream.Config{URL: "nats://127.0.0.1:4222"})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	m := metrics.New(prometheus.NewRegistry())
	p, err := processor.New(conn.JS, processor.NewRouter(), processor.Config{OnOutcome: m.Observe})
	if err != nil {
		log.Fatal(err)
	}
	m.WatchProcessor(p)
	m.WatchStreams(conn.JS, p.Config().Topology)
	ln, err := metrics.Listen("127.0.0.1:9464")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := metrics.Serve(ctx, ln, m, p.Ready); err != nil {
			log.Print(err)
		}
	}()
	if err := p.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
