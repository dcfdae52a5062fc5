package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// BenchmarkActionRecords measures what a run record costs: the processor
// end to end on an embedded server, a backlog of b.N alerts handled by 16
// workers with a real action (exec of /bin/true, or a webhook to a local
// server), once as a rule entry, which records each run, and once as the
// same handler on a router, which records nothing. The ratios are in
// docs/performance.md.
func BenchmarkActionRecords(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	b.Cleanup(srv.Close)
	// One client for both sides, keeping a connection per worker as
	// reactor's own does (http.DefaultTransport keeps 2 a host).
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	b.Cleanup(client.CloseIdleConnections)
	actions := []struct {
		name  string
		entry handlers.Entry
		bare  processor.Handler
	}{
		{"exec", handlers.Entry{On: "alerts.>", Exec: &handlers.ExecConfig{Command: []string{"true"}}},
			&handlers.Exec{Command: []string{"true"}}},
		{"webhook", handlers.Entry{On: "alerts.>", Webhook: &handlers.WebhookConfig{URL: srv.URL}},
			&handlers.Webhook{URL: srv.URL, Client: client}},
	}
	for _, a := range actions {
		for _, recorded := range []bool{false, true} {
			b.Run(a.name+"/records="+strconv.FormatBool(recorded), func(b *testing.B) {
				conn, topo := streamtest.NewTopology(b)
				publishAlerts(b, conn, b.N, strconv.Itoa)
				var h processor.Handler
				if recorded {
					rules, err := handlers.NewRules(handlers.Config{Handlers: []handlers.Entry{a.entry}}, handlers.Deps{HTTPClient: client})
					if err != nil {
						b.Fatal(err)
					}
					h = rules
				} else {
					r := processor.NewRouter()
					r.Handle("alerts.>", a.bare)
					h = r
				}
				var settled atomic.Int64
				done := make(chan struct{})
				p, err := processor.New(conn.JS, h, processor.Config{
					Topology: topo,
					Workers:  16,
					OnOutcome: func(res processor.Result) {
						if res.Outcome != processor.OutcomeAck {
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
				if recorded {
					page, err := handlers.ListRuns(context.Background(), conn.JS, handlers.RunQuery{Limit: 1})
					if err != nil || len(page.Runs) != 1 {
						b.Fatalf("no run recorded: %v", err)
					}
				}
			})
		}
	}
}
