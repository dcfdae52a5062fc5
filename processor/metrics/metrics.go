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

	// The series of each pattern, looked up once per alert instead of
	// hashing its label values twice.
	mu        sync.RWMutex
	byPattern map[string]*patternSeries
}

// patternSeries are one pattern's counters by outcome (made on first use)
// and its duration histogram.
type patternSeries struct {
	handled  [outcomes]prometheus.Counter
	duration prometheus.Observer
}

// outcomes bounds the processor.Outcome values cached.
const outcomes = 8

// New registers reactor's metrics, with the Go and process collectors, on
// reg.
func New(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		reg:       reg,
		byPattern: make(map[string]*patternSeries),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reactor_alerts_handled_total",
			Help: "Alerts settled, by outcome (ok, retried, dead_lettered, dropped, deferred) and handler pattern.",
		}, []string{"outcome", "pattern"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "reactor_handler_duration_seconds",
			Help:    "Time spent in handlers, by pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 0.5ms .. ~131s
		}, []string{"pattern"}),
		redeliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reactor_redeliveries_total",
			Help: "Deliveries of alerts that had been delivered before.",
		}),
		settleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reactor_settle_errors_total",
			Help: "Failures to acknowledge or dead-letter an alert, by outcome; a failed dead-letter publish counts under retried.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.handled, m.duration, m.redeliveries, m.settleErrors)
	registerOnce(reg, collectors.NewGoCollector())
	registerOnce(reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry the metrics are on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Observe counts one settled alert. Use it as processor.Config.OnOutcome.
func (m *Metrics) Observe(r processor.Result) {
	pattern := r.Pattern
	if pattern == "" {
		pattern = "none"
	}
	handled, duration := m.series(pattern, r.Outcome)
	handled.Inc()
	duration.Observe(r.Duration.Seconds())
	if r.Message.Delivered() > 1 {
		m.redeliveries.Inc()
	}
	if r.SettleErr != nil {
		m.settleErrors.WithLabelValues(r.Outcome.String()).Inc()
	}
}

// series returns the handled counter of pattern and o, and the duration
// histogram of pattern.
func (m *Metrics) series(pattern string, o processor.Outcome) (prometheus.Counter, prometheus.Observer) {
	if o < 0 || o >= outcomes {
		return m.handled.WithLabelValues(o.String(), pattern), m.duration.WithLabelValues(pattern)
	}
	m.mu.RLock()
	s := m.byPattern[pattern]
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
	s = m.byPattern[pattern]
	if s == nil {
		s = &patternSeries{duration: m.duration.WithLabelValues(pattern)}
		m.byPattern[pattern] = s
	}
	if s.handled[o] == nil {
		s.handled[o] = m.handled.WithLabelValues(o.String(), pattern)
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
