// Package metrics exposes a processor's work as Prometheus metrics, with the
// health and readiness endpoints operations teams probe.
//
//	m := metrics.New(prometheus.NewRegistry())
//	p, err := processor.New(js, router, processor.Config{OnOutcome: m.Observe})
//	...
//	m.WatchProcessor(p)
//	m.WatchStreams(js, p.Config().Topology)
//	ln, err := metrics.Listen("127.0.0.1:9464")
//	...
//	go metrics.Serve(ctx, ln, m, p.Ready)
//
// Example is the same, compiled.
package metrics

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/reactor-alerts/reactor/processor"
)

// Metrics holds reactor's collectors, registered on one registry.
type Metrics struct {
	reg          *prometheus.Registry
	handled      *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	redeliveries prometheus.Counter
	settleErrors *prometheus.CounterVec
	runs         *prometheus.CounterVec
	runDuration  *prometheus.HistogramVec

	// The series of each entry, looked up once per alert instead of
	// hashing its label values twice.
	mu      sync.RWMutex
	byEntry map[string]*entrySeries
}

// entrySeries are one entry's counters by outcome (made on first use) and
// its duration histogram.
type entrySeries struct {
	handled  [outcomes]prometheus.Counter
	duration prometheus.Observer
}

// outcomes bounds the processor.Outcome values cached.
const outcomes = 8

// New registers reactor's metrics, with the Go and process collectors, on
// reg.
func New(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		reg:     reg,
		byEntry: make(map[string]*entrySeries),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reactor_alerts_handled_total",
			Help: "Alerts settled, by outcome (ok, retried, dead_lettered, dropped, deferred) and the entry that took them (a rule entry's name, or a router pattern; none when no entry did).",
		}, []string{"outcome", "entry"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "reactor_handler_duration_seconds",
			Help:    "Time spent in handlers, by entry.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 0.5ms .. ~131s
		}, []string{"entry"}),
		redeliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reactor_redeliveries_total",
			Help: "Deliveries of alerts that had been delivered before.",
		}),
		settleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reactor_settle_errors_total",
			Help: "Failures to acknowledge or dead-letter an alert, by outcome; a failed dead-letter publish counts under retried.",
		}, []string{"outcome"}),
	}
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reactor_action_runs_total",
		Help: "Runs of the rule entries' actions (every action but print), by entry, action (exec, webhook, ...; empty for an alert suppressed) and outcome (ok, failed, permanent, timeout, canceled, suppressed).",
	}, []string{"entry", "action", "outcome"})
	m.runDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "reactor_action_run_duration_seconds",
		Help:    "Time the rule entries' actions took, by entry and action.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1ms .. ~262s
	}, []string{"entry", "action"})
	reg.MustRegister(m.handled, m.duration, m.redeliveries, m.settleErrors, m.runs, m.runDuration)
	registerOnce(reg, collectors.NewGoCollector())
	registerOnce(reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry the metrics are on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Observe counts one settled alert. Use it as processor.Config.OnOutcome.
func (m *Metrics) Observe(r processor.Result) {
	entry := r.Entry
	if entry == "" {
		entry = "none"
	}
	handled, duration := m.series(entry, r.Outcome)
	handled.Inc()
	duration.Observe(r.Duration.Seconds())
	if r.Message.Delivered() > 1 {
		m.redeliveries.Inc()
	}
	if r.SettleErr != nil {
		m.settleErrors.WithLabelValues(r.Outcome.String()).Inc()
	}
}

// ObserveRun counts one run of an action of a rule entry. Use it as
// handlers.Deps.OnRun: m.ObserveRun(r.Entry, r.Action, r.Outcome, r.DurationSeconds).
func (m *Metrics) ObserveRun(entry, action, outcome string, seconds float64) {
	m.runs.WithLabelValues(entry, action, outcome).Inc()
	if action != "" {
		m.runDuration.WithLabelValues(entry, action).Observe(seconds)
	}
}

// series returns the handled counter of entry and o, and the duration
// histogram of entry.
func (m *Metrics) series(entry string, o processor.Outcome) (prometheus.Counter, prometheus.Observer) {
	if o < 0 || o >= outcomes {
		return m.handled.WithLabelValues(o.String(), entry), m.duration.WithLabelValues(entry)
	}
	m.mu.RLock()
	s := m.byEntry[entry]
	var c prometheus.Counter
	if s != nil {
		c = s.handled[o]
	}
	m.mu.RUnlock()
	if c != nil {
		return c, s.duration
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s = m.byEntry[entry]
	if s == nil {
		s = &entrySeries{duration: m.duration.WithLabelValues(entry)}
		m.byEntry[entry] = s
	}
	if s.handled[o] == nil {
		s.handled[o] = m.handled.WithLabelValues(o.String(), entry)
	}
	return s.handled[o], s.duration
}

// WatchProcessor adds gauges and counters read from p at scrape time:
// workers busy, readiness, in-progress marks and dropped redeliveries.
func (m *Metrics) WatchProcessor(p *processor.Processor) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "reactor_progress_marks_total",
			Help: "In-progress marks sent, for alerts that ran or waited in the prefetch long enough to need one.",
		}, func() float64 { return float64(p.ProgressMarks()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "reactor_redeliveries_dropped_total",
			Help: "Redeliveries of alerts this process held already (buffered or running), dropped so that an alert runs once at a time.",
		}, func() float64 { return float64(p.DroppedRedeliveries()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reactor_inflight_alerts",
			Help: "Alerts whose handler is running now.",
		}, func() float64 { return float64(p.InFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reactor_workers",
			Help: "Size of the worker pool.",
		}, func() float64 { return float64(p.Config().Workers) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reactor_ready",
			Help: "1 when the processor is bound to its consumer and pulling.",
		}, func() float64 {
			if p.Ready() {
				return 1
			}
			return 0
		}),
	)
}

func registerOnce(reg *prometheus.Registry, c prometheus.Collector) {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			panic(err)
		}
	}
}
