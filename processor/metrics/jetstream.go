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

	up, history, historyBytes, dlq                *prometheus.Desc
	backlog, oldest, pending, ackPending, redeliv *prometheus.Desc
	historyMax, historyFull                       *prometheus.Desc
	storeUsed, storeLimit, storeFull, diskFree    *prometheus.Desc
}

// WatchStreams adds gauges read from JetStream at each scrape: the alert
// and DLQ stream sizes, the alert stream's size limit and the JetStream
// store's use against its limit with their FULL states (see
// stream.StoreStatus), and per consumer group its backlog (alerts not yet
// settled), the age of its oldest unsettled alert, and the alerts pending,
// in flight (ack pending) and redelivered.
func (m *Metrics) WatchStreams(js jetstream.JetStream, topo stream.Topology) {
	group := []string{"group"}
	m.reg.MustRegister(&streamCollector{
		js:           js,
		topo:         topo,
		up:           prometheus.NewDesc("reactor_jetstream_up", "1 if the last read of the streams succeeded.", nil, nil),
		history:      prometheus.NewDesc("reactor_history_alerts", "Alerts kept in the alert stream (for the groups and replay).", nil, nil),
		historyBytes: prometheus.NewDesc("reactor_history_bytes", "Size of the alert stream.", nil, nil),
		backlog:      prometheus.NewDesc("reactor_backlog_alerts", "Alerts the consumer group has not settled yet: pending plus in flight.", group, nil),
		oldest:       prometheus.NewDesc("reactor_oldest_unsettled_seconds", "Age of the group's oldest unsettled alert; 0 with an empty backlog. The stream drops alerts older than its max age.", group, nil),
		dlq:          prometheus.NewDesc("reactor_dead_letters", "Alerts in the dead-letter stream.", nil, nil),
		pending:      prometheus.NewDesc("reactor_group_pending_alerts", "Alerts not yet delivered to the consumer group.", group, nil),
		ackPending:   prometheus.NewDesc("reactor_group_ack_pending_alerts", "Alerts delivered to the group and not yet settled.", group, nil),
		redeliv:      prometheus.NewDesc("reactor_group_redelivered_alerts", "Unsettled alerts of the group delivered more than once.", group, nil),
		historyMax:   prometheus.NewDesc("reactor_history_max_bytes", "Size limit of the alert stream (run --max-bytes); absent without one.", nil, nil),
		historyFull:  prometheus.NewDesc("reactor_history_full", "1 when the alert stream is at its size limit: new alerts are refused.", nil, nil),
		storeUsed:    prometheus.NewDesc("reactor_store_used_bytes", "JetStream file storage in use, as the server counts it.", nil, nil),
		storeLimit:   prometheus.NewDesc("reactor_store_limit_bytes", "JetStream file storage limit, the account's or the embedded server's; absent when the server does not tell it.", nil, nil),
		storeFull:    prometheus.NewDesc("reactor_store_full", "1 when the JetStream store or the disk under it is full: new alerts are refused, or not answered.", nil, nil),
		diskFree:     prometheus.NewDesc("reactor_store_disk_free_bytes", "Space left on the disk under an embedded server's store; absent for another server.", nil, nil),
	})
}

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.history, c.historyBytes, c.dlq, c.backlog, c.oldest, c.pending, c.ackPending, c.redeliv,
		c.historyMax, c.historyFull, c.storeUsed, c.storeLimit, c.storeFull, c.diskFree} {
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
	gauge(c.history, float64(st.Alerts.Messages))
	gauge(c.historyBytes, float64(st.Alerts.Bytes))
	gauge(c.dlq, float64(st.DLQ.Messages))
	if st.Alerts.MaxBytes > 0 {
		gauge(c.historyMax, float64(st.Alerts.MaxBytes))
	}
	gauge(c.historyFull, flag(st.Alerts.Full))
	gauge(c.storeUsed, float64(st.Store.Used))
	if st.Store.Limit > 0 {
		gauge(c.storeLimit, float64(st.Store.Limit))
	}
	gauge(c.storeFull, flag(st.Store.Full))
	if st.Store.DiskFree != nil {
		gauge(c.diskFree, float64(*st.Store.DiskFree))
	}
	for _, g := range st.Groups {
		gauge(c.backlog, float64(g.Backlog), g.Name)
		age := 0.0
		if !g.OldestUnsettled.IsZero() {
			age = max(st.Time.Sub(g.OldestUnsettled).Seconds(), 0)
		}
		gauge(c.oldest, age, g.Name)
		gauge(c.pending, float64(g.NumPending), g.Name)
		gauge(c.ackPending, float64(g.AckPending), g.Name)
		gauge(c.redeliv, float64(g.Redelivered), g.Name)
	}
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
