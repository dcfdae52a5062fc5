package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reactor-alerts/reactor/processor/metrics"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestStoreFullGauges: an alert stream at its size limit shows as
// reactor_history_full 1 with its limit, and 0 again once room is made.
func TestStoreFullGauges(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopologyWith(t, stream.Topology{MaxBytes: 16 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := prometheus.NewRegistry()
	metrics.New(reg).WatchStreams(conn.JS, topo)
	gauge := func(name string) float64 {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == name {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	if full, max := gauge("reactor_history_full"), gauge("reactor_history_max_bytes"); full != 0 || max != 16<<10 {
		t.Errorf("empty stream: reactor_history_full %v, reactor_history_max_bytes %v; want 0 and 16384", full, max)
	}
	streamtest.Fill(t, conn, "alerts.fill", 100, 1000)
	if full := gauge("reactor_history_full"); full != 1 {
		t.Errorf("full stream: reactor_history_full %v, want 1", full)
	}
	s, err := conn.JS.Stream(ctx, topo.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if full := gauge("reactor_history_full"); full != 0 {
		t.Errorf("after the purge: reactor_history_full %v, want 0", full)
	}
}
