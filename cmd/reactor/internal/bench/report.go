package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reactor-alerts/reactor/processor/metrics"
)

// Report is the outcome of a run. The reactor phase's figures are at the top
// level; Raw and Ratio are set when Config.Raw asked for the comparison.
type Report struct {
	Phase
	// Raw is the same load through bare nats.go jetstream.
	Raw *Phase `json:"raw,omitempty"`
	// Ratio is reactor's processing rate over raw's.
	Ratio float64 `json:"ratio,omitempty"`
	// PublishRatio is reactor's publish rate over raw's.
	PublishRatio float64 `json:"publish_ratio,omitempty"`
	// Runs are every run's key figures, and Median their medians, with
	// Config.Runs above 1; Phase and Raw are then the run whose ratio is
	// the median.
	Runs   []RunSummary `json:"runs,omitempty"`
	Median *RunSummary  `json:"median,omitempty"`
	// Settings echoes what was run.
	Settings Settings `json:"settings"`
}

// Phase is what one phase (reactor or raw) measured.
type Phase struct {
	// Msgs is the number of alerts the phase tried to publish.
	Msgs int `json:"msgs"`
	// Published counts alerts stored with a PubAck.
	Published int `json:"published"`
	// PublishErrors counts alerts whose publish failed for good.
	PublishErrors int `json:"publish_errors"`
	// Acked counts ids whose first settlement was an ack, in each group.
	Acked int `json:"acked"`
	// DeadLettered counts ids whose first settlement was a dead letter, in
	// each group.
	DeadLettered int `json:"dead_lettered"`
	// Redeliveries counts deliveries after the first.
	Redeliveries int `json:"redeliveries"`
	// Lost counts ids published with a PubAck and never acked nor
	// dead-lettered within the drain timeout, in each group; LostIDs lists
	// the first 100 (with "@<group>" when there are several).
	Lost    int      `json:"lost"`
	LostIDs []string `json:"lost_ids,omitempty"`
	// Duplicates counts ids settled more than once by a group.
	Duplicates int `json:"duplicates"`
	// Injected counts the published alerts picked for each kind of failure.
	Injected Injected `json:"injected"`
	// PublishRate is Published over the publishing time, per second.
	PublishRate float64 `json:"publish_rate"`
	// ProcessRate is settled alerts per second and group, from the first
	// publish (or the start of the workers, with Backlog) to the last
	// settlement.
	ProcessRate float64 `json:"process_rate"`
	// Latency is publish→ack, for acked alerts.
	Latency Latency `json:"latency_ms"`
	// PeakRSS is the process's peak resident set during the phase (embedded
	// server included).
	PeakRSS uint64 `json:"peak_rss_bytes"`
	// PeakHeap is the peak of the Go heap's live and unswept objects.
	PeakHeap uint64 `json:"peak_heap_bytes"`
	// ProcessPeakRSS and ProcessPeakHeap are the peaks while the backlog
	// was processed (Backlog only), after the publishing's garbage was
	// collected and returned to the OS: what a process started on the
	// backlog would use, publisher excluded.
	ProcessPeakRSS  uint64 `json:"process_peak_rss_bytes,omitempty"`
	ProcessPeakHeap uint64 `json:"process_peak_heap_bytes,omitempty"`
	// CPUPerAlert is the CPU time the process (embedded server included)
	// spent per settled alert (each group's settlement counts), in
	// microseconds: from the first publish, or
	// from the start of the workers with Backlog, to the last settlement.
	// Unlike the rates, it hardly depends on what else the machine runs.
	CPUPerAlert float64 `json:"cpu_us_per_alert"`
	// PublishCPUPerAlert is the CPU time the process spent publishing, per
	// alert published, in microseconds (Backlog only, where publishing
	// runs alone).
	PublishCPUPerAlert float64 `json:"publish_cpu_us_per_alert,omitempty"`
	// Duration is the phase's wall time, from the first publish to the last
	// settlement, in seconds.
	Duration float64 `json:"duration_s"`
	// MaxSettleGap is the longest time, in milliseconds, between two
	// settlements once the first was made. A gap of seconds while alerts
	// are queued is a stall: a consumer that stopped pulling for a while.
	MaxSettleGap float64 `json:"max_settle_gap_ms"`
	// Backlog is the bench group's backlog (pending plus ack pending) after
	// the drain: 0 when every ack reached the server.
	Backlog uint64 `json:"group_backlog"`
	// DLQMessages is the number of messages in the DLQ stream after the run.
	DLQMessages uint64 `json:"dlq_messages"`
	// Metrics are the processor's Prometheus counters after the run, as
	// `reactor run --metrics` exports them (reactor phase only). They count
	// settlements, not ids: a duplicate counts twice.
	Metrics *Counters `json:"metrics,omitempty"`
}

// Counters are the values of reactor's Prometheus counters.
type Counters struct {
	// Handled is reactor_alerts_handled_total summed by outcome (ok,
	// retried, dead_lettered, dropped).
	Handled map[string]float64 `json:"handled"`
	// Redeliveries is reactor_redeliveries_total.
	Redeliveries float64 `json:"redeliveries"`
	// SettleErrors is reactor_settle_errors_total, all outcomes.
	SettleErrors float64 `json:"settle_errors"`
	// ProgressMarks is reactor_progress_marks_total: in-progress marks
	// sent for alerts that ran or waited long, each costing the server
	// what an ack costs.
	ProgressMarks float64 `json:"progress_marks"`
}

// Injected counts published alerts by injected failure.
type Injected struct {
	Failures  int `json:"failures"`
	Panics    int `json:"panics"`
	Permanent int `json:"permanent"`
}

// Latency holds percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// Settings echoes the configuration of a run.
type Settings struct {
	Server        string  `json:"server"` // "embedded" or the URL's host
	Size          int     `json:"size"`
	Publishers    int     `json:"publishers"`
	Rate          float64 `json:"rate"`
	Workers       int     `json:"workers"`
	WorkMS        float64 `json:"work_ms"`
	AckWaitS      float64 `json:"ack_wait_s,omitempty"`
	FailRate      float64 `json:"fail_rate"`
	PanicRate     float64 `json:"panic_rate"`
	PermanentRate float64 `json:"permanent_rate"`
	SyncAlways    bool    `json:"sync_always"`
	DoubleAck     bool    `json:"double_ack"`
	Backlog       bool    `json:"backlog"`
	// BacklogRestS is Config.BacklogRest in seconds.
	BacklogRestS float64 `json:"backlog_rest_s"`
	// DuplicateWindowS is the history's duplicate window in seconds.
	DuplicateWindowS float64 `json:"duplicate_window_s"`
	// WarmUp is the alerts of each side's discarded warm-up phase.
	WarmUp int `json:"warm_up"`
	// Groups, Processes, Prefetch, MaxAckPending and Replicas are Config's
	// (0: the defaults).
	Groups        int `json:"groups"`
	Processes     int `json:"processes"`
	Prefetch      int `json:"prefetch"`
	MaxAckPending int `json:"max_ack_pending"`
	Replicas      int `json:"replicas"`
}

// WriteTable writes r as a table for humans, with a raw column when there is
// one.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	cols := []*Phase{&r.Phase}
	header := fmt.Sprintf("%-20s\treactor\t", "")
	if r.Raw != nil {
		cols = append(cols, r.Raw)
		header += "raw\t"
	}
	fmt.Fprintln(tw, header)
	row := func(name string, f func(p *Phase) string) {
		var b strings.Builder
		fmt.Fprintf(&b, "%-20s\t", name) // labels left-aligned, figures right-aligned
		for _, p := range cols {
			b.WriteString(f(p) + "\t")
		}
		fmt.Fprintln(tw, b.String())
	}
	num := func(n int) string { return fmt.Sprint(n) }
	ms := func(v float64) string { return fmt.Sprintf("%.2f ms", v) }
	mib := func(v uint64) string { return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20)) }
	row("msgs", func(p *Phase) string { return num(p.Msgs) })
	row("published", func(p *Phase) string { return num(p.Published) })
	row("publish errors", func(p *Phase) string { return num(p.PublishErrors) })
	row("acked", func(p *Phase) string { return num(p.Acked) })
	row("dead-lettered", func(p *Phase) string {
		return fmt.Sprintf("%d (injected %d)", p.DeadLettered, p.Injected.Permanent)
	})
	row("redeliveries", func(p *Phase) string { return num(p.Redeliveries) })
	row("lost", func(p *Phase) string { return num(p.Lost) })
	row("duplicates", func(p *Phase) string { return num(p.Duplicates) })
	row("metrics: handled", func(p *Phase) string {
		if p.Metrics == nil {
			return "-"
		}
		h := p.Metrics.Handled
		return fmt.Sprintf("%.0f ok, %.0f retried, %.0f dead", h["ok"], h["retried"], h["dead_lettered"])
	})
	row("metrics: progress marks", func(p *Phase) string {
		if p.Metrics == nil {
			return "-"
		}
		per := 0.0
		if settled := p.Acked + p.DeadLettered; settled > 0 {
			per = p.Metrics.ProgressMarks / float64(settled)
		}
		return fmt.Sprintf("%.0f (%.2f per alert)", p.Metrics.ProgressMarks, per)
	})
	row("group backlog left", func(p *Phase) string { return fmt.Sprint(p.Backlog) })
	row("publish rate", func(p *Phase) string { return fmt.Sprintf("%.0f/s", p.PublishRate) })
	row("process rate", func(p *Phase) string { return fmt.Sprintf("%.0f/s", p.ProcessRate) })
	row("latency p50", func(p *Phase) string { return ms(p.Latency.P50) })
	row("latency p90", func(p *Phase) string { return ms(p.Latency.P90) })
	row("latency p99", func(p *Phase) string { return ms(p.Latency.P99) })
	row("latency p99.9", func(p *Phase) string { return ms(p.Latency.P999) })
	row("latency max", func(p *Phase) string { return ms(p.Latency.Max) })
	row("max settle gap", func(p *Phase) string { return ms(p.MaxSettleGap) })
	row("cpu per alert", func(p *Phase) string { return fmt.Sprintf("%.1f µs", p.CPUPerAlert) })
	if r.Settings.Backlog {
		row("cpu per publish", func(p *Phase) string { return fmt.Sprintf("%.1f µs", p.PublishCPUPerAlert) })
	}
	row("peak rss", func(p *Phase) string { return mib(p.PeakRSS) })
	row("peak go heap", func(p *Phase) string { return mib(p.PeakHeap) })
	if r.Settings.Backlog {
		row("peak rss processing", func(p *Phase) string { return mib(p.ProcessPeakRSS) })
		row("peak heap processing", func(p *Phase) string { return mib(p.ProcessPeakHeap) })
	}
	row("duration", func(p *Phase) string {
		return (time.Duration(p.Duration * float64(time.Second))).Round(time.Millisecond).String()
	})
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Median != nil {
		r.writeRuns(w)
	}
	if r.Raw != nil {
		of := ""
		if r.Median != nil {
			of = fmt.Sprintf(", median of %d runs", len(r.Runs))
		}
		fmt.Fprintf(w, "reactor/raw publish rate%s: %.2f\n", of, r.PublishRatio)
		fmt.Fprintf(w, "reactor/raw processing rate%s: %.2f\n", of, r.Ratio)
	}
	fmt.Fprintf(w, "lost: %d", r.Lost)
	if len(r.LostIDs) > 0 {
		more := ""
		if r.Lost > len(r.LostIDs) {
			more = fmt.Sprintf(" (and %d more)", r.Lost-len(r.LostIDs))
		}
		fmt.Fprintf(w, " %s%s", strings.Join(r.LostIDs, " "), more)
	}
	_, err := fmt.Fprintln(w)
	return err
}

// counters reads reactor's counters from m's registry.
func counters(m *metrics.Metrics) *Counters {
	c := &Counters{Handled: map[string]float64{}}
	families, err := m.Registry().Gather()
	if err != nil {
		return c
	}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			v := metric.GetCounter().GetValue()
			switch f.GetName() {
			case "reactor_alerts_handled_total":
				for _, l := range metric.GetLabel() {
					if l.GetName() == "outcome" {
						c.Handled[l.GetValue()] += v
					}
				}
			case "reactor_redeliveries_total":
				c.Redeliveries += v
			case "reactor_settle_errors_total":
				c.SettleErrors += v
			case "reactor_progress_marks_total":
				c.ProgressMarks += v
			}
		}
	}
	return c
}

// RunSummary is one run's key figures: the reactor phase's, the raw phase's, and
// their ratios.
type RunSummary struct {
	Reactor Figures `json:"reactor"`
	Raw     Figures `json:"raw"`
	// Ratio is reactor's processing rate over raw's.
	Ratio float64 `json:"ratio,omitempty"`
	// P99Ratio is reactor's p99 publish→ack latency over raw's.
	P99Ratio float64 `json:"p99_ratio,omitempty"`
	// PublishRatio is reactor's publish rate over raw's.
	PublishRatio float64 `json:"publish_ratio,omitempty"`
}

// Figures are a phase's key figures.
type Figures struct {
	PublishRate        float64 `json:"publish_rate"`
	PublishCPUPerAlert float64 `json:"publish_cpu_us_per_alert,omitempty"`
	ProcessRate        float64 `json:"process_rate"`
	Latency            Latency `json:"latency_ms"`
	MaxSettleGap       float64 `json:"max_settle_gap_ms"`
	PeakRSS            uint64  `json:"peak_rss_bytes"`
	CPUPerAlert        float64 `json:"cpu_us_per_alert"`
	Redeliveries       int     `json:"redeliveries"`
	Lost               int     `json:"lost"`
}

func figures(p Phase) Figures {
	return Figures{PublishRate: p.PublishRate, PublishCPUPerAlert: p.PublishCPUPerAlert, ProcessRate: p.ProcessRate, Latency: p.Latency,
		MaxSettleGap: p.MaxSettleGap, PeakRSS: p.PeakRSS, CPUPerAlert: p.CPUPerAlert, Redeliveries: p.Redeliveries, Lost: p.Lost}
}

func summarize(reactor, raw Phase, withRaw bool) RunSummary {
	r := RunSummary{Reactor: figures(reactor)}
	if withRaw {
		r.Raw = figures(raw)
		if raw.ProcessRate > 0 {
			r.Ratio = reactor.ProcessRate / raw.ProcessRate
		}
		if raw.Latency.P99 > 0 {
			r.P99Ratio = reactor.Latency.P99 / raw.Latency.P99
		}
		if raw.PublishRate > 0 {
			r.PublishRatio = reactor.PublishRate / raw.PublishRate
		}
	}
	return r
}

// pick fills the report from its runs: the phases of the run whose ratio
// is the median (the upper of the two middle ones of an even number; the
// last run without a raw phase), and, with more than one run, the medians
// of every figure, the ratio among them.
func (r *Report) pick(reactors, raws []Phase, withRaw bool) {
	i := len(r.Runs) - 1
	if withRaw {
		order := make([]int, len(r.Runs))
		for j := range order {
			order[j] = j
		}
		slices.SortFunc(order, func(a, b int) int { return cmp.Compare(r.Runs[a].Ratio, r.Runs[b].Ratio) })
		i = order[len(order)/2]
	}
	r.Phase = reactors[i]
	if withRaw {
		raw := raws[i]
		r.Raw, r.Ratio, r.PublishRatio = &raw, r.Runs[i].Ratio, r.Runs[i].PublishRatio
	}
	if len(r.Runs) > 1 {
		m := medianRun(r.Runs)
		r.Median = &m
		if withRaw {
			r.Ratio, r.PublishRatio = m.Ratio, m.PublishRatio
		}
	}
}

// medianRun is the median of each figure of runs, taken separately.
func medianRun(runs []RunSummary) RunSummary {
	med := func(f func(RunSummary) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	fig := func(side func(RunSummary) Figures) Figures {
		return Figures{
			PublishRate:        med(func(r RunSummary) float64 { return side(r).PublishRate }),
			PublishCPUPerAlert: med(func(r RunSummary) float64 { return side(r).PublishCPUPerAlert }),
			ProcessRate:        med(func(r RunSummary) float64 { return side(r).ProcessRate }),
			MaxSettleGap:       med(func(r RunSummary) float64 { return side(r).MaxSettleGap }),
			PeakRSS:            uint64(med(func(r RunSummary) float64 { return float64(side(r).PeakRSS) })),
			CPUPerAlert:        med(func(r RunSummary) float64 { return side(r).CPUPerAlert }),
			Redeliveries:       int(med(func(r RunSummary) float64 { return float64(side(r).Redeliveries) })),
			Latency: Latency{
				P50:  med(func(r RunSummary) float64 { return side(r).Latency.P50 }),
				P90:  med(func(r RunSummary) float64 { return side(r).Latency.P90 }),
				P99:  med(func(r RunSummary) float64 { return side(r).Latency.P99 }),
				P999: med(func(r RunSummary) float64 { return side(r).Latency.P999 }),
				Max:  med(func(r RunSummary) float64 { return side(r).Latency.Max }),
			},
		}
	}
	lost := func(side func(RunSummary) Figures) int {
		n := 0
		for _, r := range runs {
			n += side(r).Lost
		}
		return n
	}
	m := RunSummary{
		Reactor:      fig(func(r RunSummary) Figures { return r.Reactor }),
		Raw:          fig(func(r RunSummary) Figures { return r.Raw }),
		Ratio:        med(func(r RunSummary) float64 { return r.Ratio }),
		P99Ratio:     med(func(r RunSummary) float64 { return r.P99Ratio }),
		PublishRatio: med(func(r RunSummary) float64 { return r.PublishRatio }),
	}
	m.Reactor.Lost, m.Raw.Lost = lost(func(r RunSummary) Figures { return r.Reactor }), lost(func(r RunSummary) Figures { return r.Raw })
	return m
}

// TotalLost is the number of alerts lost in every phase of every run.
func (r *Report) TotalLost() int {
	if len(r.Runs) == 0 {
		n := r.Lost
		if r.Raw != nil {
			n += r.Raw.Lost
		}
		return n
	}
	n := 0
	for _, run := range r.Runs {
		n += run.Reactor.Lost + run.Raw.Lost
	}
	return n
}

// writeRuns writes one line per run and the medians.
func (r *Report) writeRuns(w io.Writer) {
	line := func(name string, run RunSummary) {
		side := func(f Figures) string {
			return fmt.Sprintf("pub %6.0f/s %6.0f/s p99 %7.2f ms p99.9 %7.2f ms max %7.2f ms cpu %5.1f µs",
				f.PublishRate, f.ProcessRate, f.Latency.P99, f.Latency.P999, f.Latency.Max, f.CPUPerAlert)
		}
		fmt.Fprintf(w, "%-7s reactor %s", name, side(run.Reactor))
		if r.Raw != nil {
			fmt.Fprintf(w, " | raw %s | ratio %.2f, publish ratio %.2f, p99 ratio %.2f", side(run.Raw), run.Ratio, run.PublishRatio, run.P99Ratio)
		}
		fmt.Fprintln(w)
	}
	for i, run := range r.Runs {
		line(fmt.Sprintf("run %d", i+1), run)
	}
	line("median", *r.Median)
}
