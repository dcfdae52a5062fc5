package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestOverviewSaysTheStoreIsFull: the overview's store card shows the use
// against the embedded server's limit, FULL with what to do once the alert
// stream is at its size limit, and not once room is made.
func TestOverviewSaysTheStoreIsFull(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	limited := b.topo
	limited.MaxBytes = 16 << 10
	if err := stream.EnsureStreams(ctx, b.conn.JS, limited); err != nil {
		t.Fatal(err)
	}
	code, page := b.get("/")
	if code != http.StatusOK || !strings.Contains(page, `id="store-state">0%<`) || !strings.Contains(page, "the server's limit") || strings.Contains(page, "refused") {
		t.Fatalf("overview of an empty store: %d, want 0%% of the server's limit:\n%s", code, page)
	}
	streamtest.Fill(t, b.conn, "alerts.fill", 100, 1000)
	_, page = b.get("/")
	for _, want := range []string{`id="store-state">FULL<`, "16 KiB of 16 KiB (--max-bytes), full", "New alerts are refused", "a higher --max-bytes"} {
		if !strings.Contains(page, want) {
			t.Errorf("overview of a full alert stream lacks %q", want)
		}
	}
	s, err := b.conn.JS.Stream(ctx, b.topo.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if _, page = b.get("/"); strings.Contains(page, "FULL") {
		t.Errorf("overview after the purge still says FULL")
	}
}
