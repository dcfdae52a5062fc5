package ingest

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts ingest requests and alerts. A nil *Metrics counts nothing.
type Metrics struct {
	requests *prometheus.CounterVec
	alerts   *prometheus.CounterVec
}

// NewMetrics registers the ingest metrics on reg:
// reactor_ingest_requests_total by endpoint and code, and
// reactor_ingest_alerts_total by endpoint and result (stored, duplicate).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reactor_ingest_requests_total",
			Help: "HTTP ingest requests answered, by endpoint (alertmanager, grafana, alerts, other) and status code.",
		}, []string{"endpoint", "code"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reactor_ingest_alerts_total",
			Help: "Alerts stored by HTTP ingest, by endpoint and result (stored, or duplicate: already stored with that id).",
		}, []string{"endpoint", "result"}),
	}
	reg.MustRegister(m.requests, m.alerts)
	return m
}

// Request counts one answered request to endpoint (see Endpoint). The HTTP
// listener's own rejections (authentication) count here too.
func (m *Metrics) Request(endpoint string, code int) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
}

// Endpoint names the endpoint of a request path for metrics and logs:
// alertmanager, grafana, alerts, or other.
func Endpoint(path string) string {
	switch path {
	case PathAlertmanager:
		return "alertmanager"
	case PathGrafana:
		return "grafana"
	case PathAlerts:
		return "alerts"
	}
	return "other"
}

func (m *Metrics) stored(endpoint string, r Response) {
	if m == nil {
		return
	}
	m.alerts.WithLabelValues(endpoint, "stored").Add(float64(r.Stored))
	m.alerts.WithLabelValues(endpoint, "duplicate").Add(float64(r.Duplicates))
}
