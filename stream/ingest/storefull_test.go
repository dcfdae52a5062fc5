package ingest_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/ingest"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestStoreFull: with the alert stream full, a request is answered 503 at
// once (one attempt per alert, not the publisher's retries) with
// Retry-After and the reason; once there is room, the same request is
// stored.
func TestStoreFull(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopologyWith(t, stream.Topology{MaxBytes: 16 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	streamtest.Fill(t, conn, "alerts.fill", 100, 1000)
	b := serve(t, conn, ingest.Config{})
	body := `{"name":"x","id":"after-full","summary":"` + strings.Repeat("y", 500) + `"}`
	r := b.post(t, ingest.PathAlerts, "application/json", body)
	if r.code != http.StatusServiceUnavailable || r.hdr.Get("Retry-After") != "60" {
		t.Fatalf("full store: %d, Retry-After %q, want 503 and 60: %s", r.code, r.hdr.Get("Retry-After"), r.body)
	}
	if !strings.Contains(r.body, "store full: the stream is at its size limit") || strings.Contains(r.body, "API error") || strings.Contains(r.body, "attempts") {
		t.Errorf("full store: body %s, want the reason in plain words, after one attempt", r.body)
	}
	s, err := conn.JS.Stream(ctx, topo.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if resp := decodeResponse(t, b.post(t, ingest.PathAlerts, "application/json", body)); resp.Stored != 1 {
		t.Errorf("after the purge: %+v, want the alert stored", resp)
	}
}
