package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/cmd/reactor/internal/console"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// BenchmarkPages measures each page's time to first byte on a server whose
// history holds 1,000,000 alerts (1% of them on alerts.db.primary, one in
// 100,000 with the word "needle") and whose DLQ holds 10,000 dead letters,
// with one group that has handled none of them. Run with
// go test -run '^$' -bench BenchmarkPages -benchtime 20x ./cmd/reactor/internal/console/
func BenchmarkPages(b *testing.B) {
	const alerts, deadLetters = 1_000_000, 10_000
	conn, topo := streamtest.NewTopology(b)
	ctx := context.Background()
	start := time.Now()
	publishAll(b, conn.JS, alerts, func(i int) *nats.Msg {
		a := stream.Alert{Name: "cpu", Subject: "alerts.cpu", Severity: stream.SeverityWarning,
			Summary: fmt.Sprintf("cpu at 9%d%% on web-%d", i%10, i%50), Labels: map[string]string{"host": fmt.Sprintf("web-%d", i%50), "team": "ops"},
			Source: "prometheus", Timestamp: time.Now().UTC()}
		switch {
		case i%100_000 == 7:
			a.Summary = "a needle in the haystack"
		case i%100 == 0:
			a.Name, a.Subject, a.Severity, a.Summary = "db.primary", "alerts.db.primary", stream.SeverityCritical, "replication broken"
		}
		data, _ := json.Marshal(a)
		m := nats.NewMsg(a.Subject)
		m.Data = data
		return m
	})
	publishAll(b, conn.JS, deadLetters, func(i int) *nats.Msg {
		reason := stream.ReasonMaxDeliveries
		if i%10 == 0 {
			reason = stream.ReasonPermanent
		}
		d := stream.DeadLetter{Subject: "alerts.cpu", Data: []byte(`{"summary":"cpu at 99%"}`), Reason: reason,
			Error: "exit status 1: connection refused", Entry: "alerts.>", Stream: topo.Alerts, Sequence: uint64(i + 1),
			Group: "ops", Deliveries: 5,
			FirstAttempt: time.Now(), LastAttempt: time.Now(), Queued: time.Now()}
		m := d.Msg(topo.DLQSubject(d.Subject))
		m.Header.Set(nats.MsgIdHdr, fmt.Sprint("dl-", i))
		return m
	})
	if _, err := stream.EnsureConsumer(ctx, conn.JS, topo, stream.ConsumerSpec{Name: "ops", AckWait: time.Minute, MaxDeliver: -1, MaxAckPending: 1000}); err != nil {
		b.Fatal(err)
	}
	b.Logf("stored %d alerts and %d dead letters in %s", alerts, deadLetters, time.Since(start).Round(time.Second))

	c, err := console.New(console.Config{JS: conn.JS, Topology: topo, Server: conn.ServerStatus})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	for _, p := range []struct{ name, path string }{
		{"overview", "/"},
		{"alerts", "/alerts"},
		{"alerts_older", "/alerts?before=500000"},
		{"alerts_subject", "/alerts?subject=alerts.db.primary"},
		{"alerts_severity", "/alerts?severity=critical"},
		{"alerts_label", "/alerts?label=host%3Dweb-7"},
		{"alerts_text_rare", "/alerts?q=needle"},
		{"alerts_last_30s", "/alerts?since=30s"},
		{"alert", "/alerts/123456"},
		{"dlq", "/dlq"},
		{"dlq_reason", "/dlq?reason=permanent"},
		{"dlq_text", "/dlq?q=refused&before=5000"},
		{"deadletter", "/dlq/4242"},
		{"groups", "/groups"},
	} {
		b.Run(p.name, func(b *testing.B) {
			var ttfb time.Duration
			for b.Loop() {
				ttfb += get(b, srv.URL+p.path)
			}
			b.ReportMetric(float64(ttfb.Microseconds())/1000/float64(b.N), "ms-ttfb")
		})
	}
}

// get fetches url, reads the whole page and returns the time to its first
// byte.
func get(b *testing.B, url string) time.Duration {
	var start time.Time
	var first time.Duration
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Since(start) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %s", url, resp.Status)
	}
	return first
}

// publishAll publishes n messages asynchronously, at most 4096 awaiting
// their acknowledgement (the client's default window), and fails on any refusal.
func publishAll(b *testing.B, js jetstream.JetStream, n int, msg func(i int) *nats.Msg) {
	b.Helper()
	for i := range n {
		m := msg(i)
		for {
			_, err := js.PublishMsgAsync(m)
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				<-js.PublishAsyncComplete() // let the server catch up
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			break
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatal("publishes not acknowledged within 5 minutes")
	}
}
