package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/processor/metrics"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestMetricsAfterKnownWorkload(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	m := metrics.New(prometheus.NewRegistry())
	var settled atomic.Int32
	var failedOnce atomic.Bool
	r := processor.NewRouter()
	r.On("alerts.ok", func(context.Context, *processor.Message) error { return nil })
	r.On("alerts.bad", func(context.Context, *processor.Message) error { return processor.Permanent(errors.New("bad")) })
	r.On("alerts.flaky", func(context.Context, *processor.Message) error {
		if failedOnce.CompareAndSwap(false, true) {
			return errors.New("flaky")
		}
		return nil
	})
	p, err := processor.New(conn.JS, r, processor.Config{
		Topology: topo, Workers: 2, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond,
		OnOutcome: func(res processor.Result) { m.Observe(res); settled.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	m.WatchProcessor(p)
	m.WatchStreams(conn.JS, topo)

	ln, err := metrics.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error)
	go func() { served <- metrics.Serve(ctx, ln, m, p.Ready) }()

	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz = %d, want 200", code)
	}
	if code, _ := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz before the consumer is bound = %d, want 503", code)
	}

	for i := range 10 {
		streamtest.Publish(t, conn, "alerts.ok", fmt.Sprint("ok-", i), []byte("x"))
	}
	streamtest.Publish(t, conn, "alerts.bad", "bad", []byte("x"))
	streamtest.Publish(t, conn, "alerts.flaky", "flaky", []byte("x"))
	ran := make(chan error)
	go func() { ran <- p.Run(ctx) }()
	streamtest.Eventually(t, 10*time.Second, func() error {
		if n := settled.Load(); n != 13 {
			return fmt.Errorf("%d outcomes, want 13", n)
		}
		return nil
	}, "13 outcomes")
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("readyz while running = %d, want 200", code)
	}

	streamtest.Eventually(t, 10*time.Second, func() error {
		pending, ackPending, ok := streamtest.ConsumerPending(conn.JS, topo.Alerts, "reactor")
		if !ok || pending != 0 || ackPending != 0 {
			return fmt.Errorf("consumer pending %d, ack pending %d, want 0 and 0 (info ok: %v)", pending, ackPending, ok)
		}
		return nil
	}, "acks applied: backlog empty")
	// A second group that handles nothing: its backlog is the 10 ok alerts.
	if _, err := stream.EnsureConsumer(ctx, conn.JS, topo, stream.ConsumerSpec{Name: "idle", AckWait: time.Minute, MaxDeliver: -1,
		MaxAckPending: 100, FilterSubjects: []string{"alerts.ok"}, Start: stream.Start{Policy: stream.StartAll}}); err != nil {
		t.Fatal(err)
	}
	_, body := get(t, base+"/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		for _, mt := range families[name].GetMetric() {
			match := true
			for _, lp := range mt.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					match = false
				}
			}
			if match {
				if c := mt.GetCounter(); c != nil {
					return c.GetValue()
				}
				if g := mt.GetGauge(); g != nil {
					return g.GetValue()
				}
				if h := mt.GetHistogram(); h != nil {
					return float64(h.GetSampleCount())
				}
			}
		}
		return -1
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"reactor_alerts_handled_total", map[string]string{"outcome": "ok", "entry": "alerts.ok"}, 10},
		{"reactor_alerts_handled_total", map[string]string{"outcome": "dead_lettered", "entry": "alerts.bad"}, 1},
		{"reactor_alerts_handled_total", map[string]string{"outcome": "retried", "entry": "alerts.flaky"}, 1},
		{"reactor_alerts_handled_total", map[string]string{"outcome": "ok", "entry": "alerts.flaky"}, 1},
		{"reactor_redeliveries_total", nil, 1},
		{"reactor_handler_duration_seconds", map[string]string{"entry": "alerts.ok"}, 10},
		{"reactor_workers", nil, 2},
		{"reactor_ready", nil, 1},
		{"reactor_progress_marks_total", nil, 0},
		{"reactor_redeliveries_dropped_total", nil, 0},
		{"reactor_jetstream_up", nil, 1},
		{"reactor_backlog_alerts", map[string]string{"group": "reactor"}, 0},
		{"reactor_backlog_alerts", map[string]string{"group": "idle"}, 10},
		{"reactor_oldest_unsettled_seconds", map[string]string{"group": "reactor"}, 0},
		{"reactor_history_alerts", nil, 12},
		{"reactor_dead_letters", nil, 1},
		{"reactor_group_ack_pending_alerts", map[string]string{"group": "reactor"}, 0},
		{"reactor_history_full", nil, 0},
		{"reactor_history_max_bytes", nil, -1}, // no size limit: absent
		{"reactor_store_full", nil, 0},
	}
	for _, tt := range tests {
		if got := value(tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if age := value("reactor_oldest_unsettled_seconds", map[string]string{"group": "idle"}); age <= 0 || age > 60 {
		t.Errorf("oldest unsettled alert of group idle is %vs old, want the age of the first ok alert", age)
	}
	if used, limit, free := value("reactor_store_used_bytes", nil), value("reactor_store_limit_bytes", nil), value("reactor_store_disk_free_bytes", nil); used <= 0 || limit <= used || free <= 0 {
		t.Errorf("store: %v bytes used of %v, %v free on the disk; want some used below the embedded server's limit, the disk's free space", used, limit, free)
	}
	if _, ok := families["go_goroutines"]; !ok {
		t.Error("Go runtime metrics missing")
	}
	for name := range families {
		if strings.HasPrefix(name, "reactor_") && families[name].GetType().String() == "COUNTER" && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
	}
	cancel()
	if err := <-ran; err != nil {
		t.Error(err)
	}
	if err := <-served; err != nil {
		t.Error(err)
	}
}

func TestObserveRun(t *testing.T) {
	t.Parallel()
	m := metrics.New(prometheus.NewRegistry())
	m.ObserveRun("page", "exec", "ok", 0.5)
	m.ObserveRun("page", "exec", "ok", 1.5)
	m.ObserveRun("page", "exec", "failed", 0.1)
	m.ObserveRun("page", "", "suppressed", 0)
	var out strings.Builder
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "reactor_action_run") {
			continue
		}
		for _, mm := range mf.GetMetric() {
			var labels []string
			for _, l := range mm.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := mm.GetCounter().GetValue()
			if h := mm.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			fmt.Fprintf(&out, "%s{%s} %g\n", mf.GetName(), strings.Join(labels, ","), v)
		}
	}
	want := `reactor_action_run_duration_seconds{action=exec,entry=page} 3
reactor_action_runs_total{action=,entry=page,outcome=suppressed} 1
reactor_action_runs_total{action=exec,entry=page,outcome=failed} 1
reactor_action_runs_total{action=exec,entry=page,outcome=ok} 2
`
	if out.String() != want {
		t.Errorf("series:\n%s\nwant:\n%s", out.String(), want)
	}
}
