package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if cfg.Logger == nil {
		// The server's warnings say why a stream could not be created.
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if rep.Lost != 0 {
		t.Fatalf("lost %d alerts: %v", rep.Lost, rep.LostIDs)
	}
	return rep
}

func TestRunSettlesEveryAlert(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		final []string
	)
	rep := run(t, Config{Msgs: 1000, Workers: 8, Publishers: 2, Raw: true, OnProgress: func(p Progress) {
		if p.Done {
			mu.Lock()
			final = append(final, p.Phase)
			mu.Unlock()
		}
	}})
	for _, p := range []*Phase{&rep.Phase, rep.Raw} {
		if p.Published != 1000 || p.Acked != 1000 || p.Duplicates != 0 || p.DeadLettered != 0 || p.Backlog != 0 {
			t.Errorf("phase: %+v, want 1000 published and acked once, nothing left", *p)
		}
		if p.ProcessRate <= 0 || p.PublishRate <= 0 || p.Latency.P50 <= 0 || p.Latency.Max < p.Latency.P99 || (cpuTime() > 0 && p.CPUPerAlert <= 0) {
			t.Errorf("rates or latency missing: %+v", *p)
		}
		if p.PeakHeap == 0 {
			t.Errorf("peak heap not measured")
		}
	}
	if rep.Ratio <= 0 {
		t.Errorf("ratio %g, want > 0", rep.Ratio)
	}
	// Each side warms up first, with its own progress.
	if want := []string{"reactor warm-up", "raw warm-up", "reactor", "raw"}; !slices.Equal(final, want) {
		t.Errorf("final progress reported for %q, want once per phase: %q", final, want)
	}
}

func TestRunInjectsFailures(t *testing.T) {
	t.Parallel()
	rep := run(t, Config{Msgs: 1500, Workers: 8, FailRate: 0.05, PanicRate: 0.01, PermanentRate: 0.03})
	if rep.Injected.Failures == 0 || rep.Injected.Panics == 0 || rep.Injected.Permanent == 0 {
		t.Fatalf("injected %+v: want some of each with 1500 alerts", rep.Injected)
	}
	if want := rep.Injected.Failures + rep.Injected.Panics; rep.Redeliveries < want {
		t.Errorf("redeliveries %d, want at least the %d injected failures and panics", rep.Redeliveries, want)
	}
	if rep.DeadLettered != rep.Injected.Permanent || rep.DLQMessages != uint64(rep.Injected.Permanent) {
		t.Errorf("dead-lettered %d, DLQ holds %d; injected %d", rep.DeadLettered, rep.DLQMessages, rep.Injected.Permanent)
	}
	// The processor's Prometheus counters, as reactor run exports them,
	// agree with the bench's own count of ids.
	if m := rep.Metrics; m == nil {
		t.Error("no metrics in the reactor phase")
	} else {
		if m.Handled["dead_lettered"] != float64(rep.DeadLettered) || m.Redeliveries != float64(rep.Redeliveries) {
			t.Errorf("metrics %+v: want %d dead-lettered and %d redeliveries", *m, rep.DeadLettered, rep.Redeliveries)
		}
		if rep.Duplicates == 0 && m.Handled["ok"] != float64(rep.Acked) {
			t.Errorf("metrics handled ok %v, want %d acked", m.Handled["ok"], rep.Acked)
		}
		if m.Handled["retried"] < float64(rep.Injected.Failures+rep.Injected.Panics) {
			t.Errorf("metrics retried %v, want at least the %d injected failures and panics", m.Handled["retried"], rep.Injected.Failures+rep.Injected.Panics)
		}
	}
	if rep.Acked+rep.DeadLettered != rep.Published {
		t.Errorf("acked %d + dead-lettered %d != published %d", rep.Acked, rep.DeadLettered, rep.Published)
	}
}

func TestRunBacklogAtRate(t *testing.T) {
	t.Parallel()
	rep := run(t, Config{Msgs: 500, Workers: 4, Rate: 5000, Backlog: true, BacklogRest: time.Second, Work: time.Millisecond})
	if rep.Acked != 500 {
		t.Errorf("acked %d, want 500", rep.Acked)
	}
	if rep.Settings.BacklogRestS != 1 {
		t.Errorf("settings say a rest of %gs, want 1s", rep.Settings.BacklogRestS)
	}
	// Processing is timed from the end of the rest: the phase's duration
	// (first publish to last ack) holds the publishing, the rest and the
	// processing, so processing timed with the rest would take more than
	// the duration less the rest, however loaded the machine.
	if processing := float64(rep.Acked) / rep.ProcessRate; processing > rep.Duration-rep.Settings.BacklogRestS {
		t.Errorf("processing took %.3fs by the process rate, the phase %.3fs with a %gs rest: the rate counts the rest",
			processing, rep.Duration, rep.Settings.BacklogRestS)
	}
	if rep.ProcessPeakHeap == 0 || rep.PeakHeap < rep.ProcessPeakHeap {
		t.Errorf("peak heap %d, while processing %d: want both, the overall peak the larger", rep.PeakHeap, rep.ProcessPeakHeap)
	}
	// 500 alerts at 5000/s take about 100ms: a rate far above the target
	// means the pacing is not applied.
	if rep.PublishRate > 10000 {
		t.Errorf("publish rate %.0f/s, want about 5000/s", rep.PublishRate)
	}
}

// TestRunWritesCPUProfiles: one profile per phase, and one of its
// publishing with a backlog, in pprof's gzipped format; none of the
// warm-up. Not parallel: a process has one CPU profile at a time.
func TestRunWritesCPUProfiles(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "cpu")
	rep := run(t, Config{Msgs: 500, Workers: 4, Raw: true, Backlog: true, CPUProfile: prefix})
	if all, _ := filepath.Glob(prefix + "-*"); len(all) != 4 {
		t.Errorf("profiles %v, want 4", all)
	}
	if rep.PublishCPUPerAlert <= 0 || rep.Raw.PublishCPUPerAlert <= 0 || rep.PublishRatio <= 0 {
		t.Errorf("publishing CPU %g and %g µs per alert, publish ratio %g: want all measured",
			rep.PublishCPUPerAlert, rep.Raw.PublishCPUPerAlert, rep.PublishRatio)
	}
	for _, phase := range []string{"reactor", "raw", "reactor-publish", "raw-publish"} {
		files, _ := filepath.Glob(prefix + "-*-" + phase + ".pprof")
		if len(files) != 1 {
			t.Fatalf("%s phase: profiles %v, want one", phase, files)
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: %d bytes, not a gzipped profile", files[0], len(b))
		}
	}
}

func TestRunExternalServerLeavesNoStreams(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServer(t)
	cfg := Config{Msgs: 300, Workers: 4, DoubleAck: true, PermanentRate: 0.1}
	cfg.Conn.URL = conn.ServerStatus().URL
	rep := run(t, cfg)
	if rep.Settings.Server == "embedded" || rep.DeadLettered != rep.Injected.Permanent {
		t.Errorf("report %+v", rep)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for name := range conn.JS.StreamNames(ctx).Name() {
		t.Errorf("stream %s left behind", name)
	}
}

func TestRunRemovesItsTempDir(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	run(t, Config{Msgs: 10, Workers: 1, SyncAlways: true})
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"rates above one":         {FailRate: 0.6, PermanentRate: 0.6},
		"negative rate":           {PanicRate: -0.1},
		"sync-always on external": {SyncAlways: true, Conn: connURL("nats://127.0.0.1:4222")},
		"payload too large":       {Size: 2 << 20},
		"negative work":           {Work: -time.Second},
		"rest without a backlog":  {BacklogRest: time.Second},
		"negative rest":           {Backlog: true, BacklogRest: -time.Second},
		"profile in no directory": {CPUProfile: filepath.Join(t.TempDir(), "missing", "cpu")},
		"replicas embedded":       {Replicas: 3},
		"negative prefetch":       {Prefetch: -1},
	} {
		if err := cfg.withDefaults().validate(); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if err := (Config{}).withDefaults().validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

func TestInjectorIsDeterministic(t *testing.T) {
	t.Parallel()
	inj := newInjector(Config{Seed: 7, FailRate: 0.1, PanicRate: 0.1, PermanentRate: 0.1})
	counts := map[kind]int{}
	for i := range 100_000 {
		k := inj.kind(i)
		if k != inj.kind(i) {
			t.Fatalf("index %d: kind changes between calls", i)
		}
		counts[k]++
	}
	for _, k := range []kind{kindFail, kindPanic, kindPermanent} {
		if c := counts[k]; c < 9_500 || c > 10_500 {
			t.Errorf("kind %d picked %d times of 100000, want about 10000", k, c)
		}
	}
}

func TestReportJSONAndTable(t *testing.T) {
	t.Parallel()
	rep := &Report{Phase: Phase{Msgs: 3, Published: 3, Acked: 2, Lost: 1, LostIDs: []string{"x-2"}}, Raw: &Phase{Msgs: 3}, Ratio: 0.9, PublishRatio: 0.8}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"msgs", "published", "acked", "dead_lettered", "redeliveries", "lost", "duplicates",
		"publish_rate", "process_rate", "latency_ms", "peak_rss_bytes", "peak_heap_bytes", "duration_s", "raw", "ratio"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	var out bytes.Buffer
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"process rate", "raw", "reactor/raw processing rate: 0.90", "reactor/raw publish rate: 0.80", "lost: 1 x-2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func connURL(u string) (c stream.Config) {
	c.URL = u
	return c
}

func TestRunsAlternateAndReportMedians(t *testing.T) {
	t.Parallel()
	rep := run(t, Config{Msgs: 300, Workers: 4, Raw: true, Runs: 3})
	if len(rep.Runs) != 3 || rep.Median == nil {
		t.Fatalf("runs %d, median %v: want 3 runs and their medians", len(rep.Runs), rep.Median)
	}
	ratios := []float64{rep.Runs[0].Ratio, rep.Runs[1].Ratio, rep.Runs[2].Ratio}
	slices.Sort(ratios)
	if rep.Median.Ratio != ratios[1] || rep.Ratio != ratios[1] {
		t.Errorf("median ratio %g, report ratio %g; ratios %v", rep.Median.Ratio, rep.Ratio, ratios)
	}
	for i, r := range rep.Runs {
		if r.Reactor.ProcessRate <= 0 || r.Raw.ProcessRate <= 0 || r.Reactor.Latency.P99 <= 0 {
			t.Errorf("run %d: %+v", i+1, r)
		}
	}
	var out bytes.Buffer
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"run 3", "median", "median of 3 runs"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// TestEvenRunsReportOneMedian: with an even number of runs the headline
// ratio is the median the table prints (the middle two's mean), not one of
// the middle runs' ratios.
func TestEvenRunsReportOneMedian(t *testing.T) {
	t.Parallel()
	rep := &Report{Runs: []RunSummary{{Ratio: 0.90}, {Ratio: 0.64}}}
	rep.pick(make([]Phase, 2), make([]Phase, 2), true)
	if want := (0.64 + 0.90) / 2; rep.Ratio != want || rep.Median.Ratio != want {
		t.Errorf("ratio %g, median row %g, want both %g", rep.Ratio, rep.Median.Ratio, want)
	}
}

// TestRunFansOutToGroupsOfProcesses: with several groups of several
// processes, every group settles every alert once, on both sides, and the
// rates are per group.
func TestRunFansOutToGroupsOfProcesses(t *testing.T) {
	t.Parallel()
	rep := run(t, Config{Msgs: 600, Workers: 4, Groups: 3, Processes: 2, Prefetch: 50, MaxAckPending: 200, Raw: true, WarmUp: -1, FailRate: 0.02})
	for _, p := range []*Phase{&rep.Phase, rep.Raw} {
		if settled := p.Acked + p.DeadLettered; settled != 3*600 || p.Duplicates != 0 || p.Backlog != 0 {
			t.Errorf("phase: %d acked, %d dead-lettered, %d duplicates, %d left: want 1800 settled once each, nothing left",
				p.Acked, p.DeadLettered, p.Duplicates, p.Backlog)
		}
		if p.ProcessRate <= 0 || p.CPUPerAlert < 0 {
			t.Errorf("rate %g, cpu %g", p.ProcessRate, p.CPUPerAlert)
		}
	}
	if want := rep.Injected.Failures; want == 0 || want%3 != 0 || rep.Redeliveries < want {
		t.Errorf("redeliveries %d, injected failures %d: want each group to retry its own", rep.Redeliveries, want)
	}
	if s := rep.Settings; s.Groups != 3 || s.Processes != 2 || s.Prefetch != 50 || s.MaxAckPending != 200 {
		t.Errorf("settings %+v", s)
	}
}
