package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// benchJSON runs `reactor bench --json` with args, requires exit 0, and
// decodes the report into a generic map, so that the test checks the field
// names users' scripts rely on rather than the Go struct.
func benchJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	r := mustReactor(t, "", append([]string{"bench", "--json"}, args...)...)
	if strings.Count(strings.TrimSpace(r.stdout), "\n") != 0 {
		t.Fatalf("--json printed more than one line:\n%s", r.stdout)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("decode %q: %v", r.stdout, err)
	}
	return rep
}

// num reads a number at a dotted path, failing the test if it is missing.
func num(t *testing.T, rep map[string]any, path string) float64 {
	t.Helper()
	var v any = rep
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %v is not an object", path, v)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("report lacks %s: %v", path, rep)
		}
	}
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("%s = %v: not a number", path, v)
	}
	return f
}

func TestBenchJSONReportsEveryAlert(t *testing.T) {
	t.Parallel()
	rep := benchJSON(t, "--msgs", "20000", "--workers", "16", "--duplicate-window", "30s")
	if w := num(t, rep, "settings.duplicate_window_s"); w != 30 {
		t.Errorf("settings.duplicate_window_s = %v, want 30", w)
	}
	for _, f := range []string{"msgs", "published", "acked", "dead_lettered", "redeliveries", "lost", "duplicates",
		"publish_rate", "process_rate", "latency_ms.p50", "latency_ms.p90", "latency_ms.p99", "latency_ms.p999",
		"latency_ms.max", "peak_rss_bytes", "peak_heap_bytes", "duration_s"} {
		num(t, rep, f)
	}
	if lost := num(t, rep, "lost"); lost != 0 {
		t.Errorf("lost %v alerts: %v", lost, rep["lost_ids"])
	}
	for _, f := range []string{"msgs", "published", "acked"} {
		if got := num(t, rep, f); got != 20000 {
			t.Errorf("%s = %v, want 20000", f, got)
		}
	}
	if num(t, rep, "process_rate") <= 0 || num(t, rep, "latency_ms.p99") <= 0 || num(t, rep, "peak_heap_bytes") <= 0 {
		t.Errorf("rates, latency or memory not measured: %v", rep)
	}
	if _, ok := rep["raw"]; ok {
		t.Errorf("raw figures without --raw: %v", rep["raw"])
	}
}

func TestBenchFailuresAreRetriedAndNothingIsLost(t *testing.T) {
	t.Parallel()
	rep := benchJSON(t, "--msgs", "5000", "--fail-rate", "0.05", "--panic-rate", "0.01", "--raw")
	if n := num(t, rep, "redeliveries"); n < num(t, rep, "injected.failures")+num(t, rep, "injected.panics") || n == 0 {
		t.Errorf("redeliveries %v, want at least the injected failures and panics %v", n, rep["injected"])
	}
	if lost := num(t, rep, "lost"); lost != 0 {
		t.Errorf("lost %v alerts: %v", lost, rep["lost_ids"])
	}
	if acked := num(t, rep, "acked"); acked != 5000 {
		t.Errorf("acked %v, want 5000: failures and panics succeed on redelivery", acked)
	}
	if num(t, rep, "raw.acked") != 5000 || num(t, rep, "raw.lost") != 0 || num(t, rep, "ratio") <= 0 {
		t.Errorf("raw phase: %v, ratio %v", rep["raw"], rep["ratio"])
	}
}

func TestBenchDeadLettersMatchInjected(t *testing.T) {
	t.Parallel()
	rep := benchJSON(t, "--msgs", "5000", "--permanent-rate", "0.01")
	injected := num(t, rep, "injected.permanent")
	if injected == 0 {
		t.Fatal("no permanent failure injected in 5000 alerts at 1%")
	}
	if dl, dlq := num(t, rep, "dead_lettered"), num(t, rep, "dlq_messages"); dl != injected || dlq != injected {
		t.Errorf("dead-lettered %v, DLQ stream holds %v, want the %v injected", dl, dlq, injected)
	}
	if acked := num(t, rep, "acked"); acked+injected != 5000 {
		t.Errorf("acked %v + dead-lettered %v != 5000", acked, injected)
	}
}

func TestBenchTableAndUsageErrors(t *testing.T) {
	t.Parallel()
	r := mustReactor(t, "", "bench", "--msgs", "300", "--workers", "4", "--rate", "3000")
	for _, want := range []string{"process rate", "latency p99", "peak rss", "lost: 0\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.stderr != "" {
		t.Errorf("stderr without a terminal: %q (progress bars belong on a terminal only)", r.stderr)
	}
	for _, args := range [][]string{
		{"bench", "--msgs", "0"},
		{"bench", "--fail-rate", "0.7", "--permanent-rate", "0.7"},
		{"bench", "--token", "secret"},
	} {
		r := reactor(t, "", args...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, "reactor") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("reactor %s: exit %d, stderr %q: want a one-line error and exit 2", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}
