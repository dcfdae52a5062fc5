package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reactor-alerts/reactor/handlers"
)

// ruleCountsCollector exposes what this process's rules filtered,
// suppressed and limited, per entry, on /metrics.
type ruleCountsCollector struct{ rules *handlers.Rules }

var ruleCountsDesc = prometheus.NewDesc("reactor_rule_alerts_total",
	"Alerts a handler entry filtered (no action), suppressed (a repeat within its window) or limited (made to wait: an alert may wait more than once), by entry and result.",
	[]string{"entry", "result"}, nil)

func (ruleCountsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- ruleCountsDesc }

func (c ruleCountsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range c.rules.Counts().Snapshot() {
		ch <- prometheus.MustNewConstMetric(ruleCountsDesc, prometheus.CounterValue, float64(e.Filtered), e.Entry, handlers.CountFiltered)
		ch <- prometheus.MustNewConstMetric(ruleCountsDesc, prometheus.CounterValue, float64(e.Suppressed), e.Entry, handlers.CountSuppressed)
		ch <- prometheus.MustNewConstMetric(ruleCountsDesc, prometheus.CounterValue, float64(e.Limited), e.Entry, handlers.CountLimited)
	}
}

// writeRuleCounts prints the rules' counts of every group, as `reactor run`
// processes stored them (handlers.CountsStream).
func writeRuleCounts(w io.Writer, counts []handlers.EntryCount) error {
	if len(counts) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tRULE ENTRY\tFILTERED\tSUPPRESSED\tLIMITED")
	for _, e := range counts {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", e.Group, e.Entry, e.Filtered, e.Suppressed, e.Limited)
	}
	return tw.Flush()
}
