package metrics

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/reactor-alerts/reactor/stream"
)

// streamCollector reads the streams and consumer groups at scrape time, from
// the same stream.ReadStatus that `reactor status` prints.
type streamCollector struct {
	js   jetstream.JetStream
	topo stream.Topology

	up, backlog, history, historyBytes, dlq *prometheus.Desc
	pending, ackPending, redelivered        *prometheus.Desc
}

// WatchStreams adds gauges read from JetStream at each scrape: the backlog,
// history and DLQ sizes, and per consumer group the alerts pending, in
// flight (ack pending) and redelivered.
func (m *Metrics) WatchStreams(js jetstream.JetStream, topo stream.Topology) {
	group := []string{"group"}
	m.reg.MustRegister(&streamCollector{
		js:           js,
		topo:         topo,
		up:           prometheus.NewDesc("reactor_jetstream_up", "1 if the last read of the streams succeeded.", nil, nil),
		backlog:      prometheus.NewDesc("reactor_backlog_alerts", "Alerts in the work queue, not yet handled.", nil, nil),
		history:      prometheus.NewDesc("reactor_history_alerts", "Alerts kept in the history stream for replay.", nil, nil),
		historyBytes: prometheus.NewDesc("reactor_history_bytes", "Size of the history stream.", nil, nil),
		dlq:          prometheus.NewDesc("reactor_dead_letters", "Alerts in the dead-letter stream.", nil, nil),
		pending:      prometheus.NewDesc("reactor_group_pending_alerts", "Alerts not yet delivered to the consumer group.", group, nil),
		ackPending:   prometheus.NewDesc("reactor_group_ack_pending_alerts", "Alerts delivered to the group and not yet settled.", group, nil),
		redelivered:  prometheus.NewDesc("reactor_group_redelivered_alerts", "Unsettled alerts of the group delivered more than once.", group, nil),
	})
}

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.backlog, c.history, c.historyBytes, c.dlq, c.pending, c.ackPending, c.redelivered} {
		ch <- d
	}
}

func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := stream.ReadStatus(ctx, c.js, c.topo)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.up, 1)
	gauge(c.backlog, float64(st.Work.Messages))
	gauge(c.history, float64(st.History.Messages))
	gauge(c.historyBytes, float64(st.History.Bytes))
	gauge(c.dlq, float64(st.DLQ.Messages))
	for _, g := range st.Groups {
		gauge(c.pending, float64(g.NumPending), g.Name)
		gauge(c.ackPending, float64(g.AckPending), g.Name)
		gauge(c.redelivered, float64(g.Redelivered), g.Name)
	}
}
