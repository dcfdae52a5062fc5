package console

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/reactor-alerts/reactor/stream"
)

type overviewData struct {
	AlertStream string
	Status      *stream.Status
	Server      *stream.ServerStatus
	Chart       chart
	Ranges      []chartRange
}

// chartRanges are the ranges the overview's chart offers, with their
// names in the URL (?range=) and the step of their bars.
var chartRanges = []struct {
	name       string
	span, step time.Duration
}{
	{"15m", 15 * time.Minute, time.Minute},
	{"1h", time.Hour, time.Minute},
	{"6h", 6 * time.Hour, 5 * time.Minute},
	{"24h", 24 * time.Hour, 15 * time.Minute},
	{"7d", 7 * 24 * time.Hour, time.Hour},
}

// chartRange is a link to one of chartRanges.
type chartRange struct {
	Name    string
	Current bool
}

// chartStep is the step of the bars of a chart over span.
func chartStep(span time.Duration) time.Duration {
	for _, r := range chartRanges {
		if span <= r.span {
			return r.step
		}
	}
	return chartRanges[len(chartRanges)-1].step
}

// chartSpan is the chart's range: the one the page asks for, else
// Config.ChartWindow, else the smallest of chartRanges that covers the
// alert stream's age, up to ChartWindowAutoMax.
func (c *Console) chartSpan(name string, st *stream.Status) (time.Duration, error) {
	if name != "" {
		for _, r := range chartRanges {
			if r.name == name {
				return r.span, nil
			}
		}
		return 0, fmt.Errorf("bad range %q: want 15m, 1h, 6h, 24h or 7d", name)
	}
	if c.cfg.ChartWindow > 0 {
		return c.cfg.ChartWindow, nil
	}
	age := st.Time.Sub(st.Alerts.FirstTime)
	span := chartRanges[0].span
	for _, r := range chartRanges {
		if r.span > ChartWindowAutoMax {
			break
		}
		span = r.span
		if st.Alerts.Messages == 0 || age <= r.span {
			break
		}
	}
	return span, nil
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	st, ok := c.readStatus(ctx, w, r)
	if !ok {
		return
	}
	d := overviewData{Status: st, AlertStream: c.cfg.Topology.WithDefaults().Alerts}
	span, err := c.chartSpan(r.URL.Query().Get("range"), st)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	for _, cr := range chartRanges {
		d.Ranges = append(d.Ranges, chartRange{Name: cr.name, Current: cr.span == span})
	}
	if c.cfg.Server != nil {
		srv := c.cfg.Server()
		d.Server = &srv
	}
	c.timeline.sample(ctx, c.cfg.SampleInterval)
	var backlog uint64
	for _, g := range st.Groups {
		backlog += g.Backlog
	}
	d.Chart, err = c.chart(ctx, st.Time, backlog, span)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	c.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Refresh: c.cfg.Refresh, Data: d})
}

// chart is the overview's chart, a bar per step, laid out for an SVG.
type chart struct {
	W, H, PlotH  int
	Span, Step   time.Duration
	Bars         []bar
	DeadBars     []bar
	Handled      string // polyline points
	Backlog      string // polygon points
	Max          uint64
	BacklogMax   uint64
	Ticks        []tick
	Published    uint64 // totals over the window
	HandledTotal uint64
	DeadTotal    uint64
	SampledSince time.Time
	From         time.Time
	LastBacklog  uint64
	BacklogH     int
}

type bar struct {
	X, Y, W, H float64
	Title      string
}

type tick struct {
	X     float64
	Label string
}

// chart lays out the chart of the span up to now, when the groups' backlog
// is backlog.
func (c *Console) chart(ctx context.Context, now time.Time, backlogNow uint64, span time.Duration) (chart, error) {
	now = now.UTC()
	step := chartStep(span)
	end := now.Truncate(step)
	from := end.Add(-span + step)
	published, err := c.timeline.perStep(ctx, c.cfg.Topology.Alerts, from, now, step)
	if err != nil {
		return chart{}, err
	}
	dead, err := c.timeline.perStep(ctx, c.cfg.Topology.DLQ, from, now, step)
	if err != nil {
		return chart{}, err
	}
	n := len(published)
	handled, backlog, sampled := c.timeline.stepSamples(from, n, step)
	backlog[n-1], sampled[n-1] = backlogNow, true
	ch := chart{W: 760, PlotH: 150, BacklogH: 60, Span: span, Step: step, From: from, SampledSince: c.timeline.since()}
	ch.H = ch.PlotH + 18
	for i := range n {
		ch.Max = max(ch.Max, published[i], handled[i], dead[i])
		ch.BacklogMax = max(ch.BacklogMax, backlog[i])
		ch.Published += published[i]
		ch.HandledTotal += handled[i]
		ch.DeadTotal += dead[i]
	}
	ch.Max = niceCeil(ch.Max)
	ch.BacklogMax = niceCeil(ch.BacklogMax)
	bw := float64(ch.W) / float64(n)
	y := func(v, top uint64, h int) float64 { return float64(h) - float64(v)/float64(top)*float64(h) }
	var hp, bp []string
	label, every := "15:04", tickEvery(span)
	if span > 24*time.Hour {
		label = "Jan 2 15:04"
	}
	for i := range n {
		x := float64(i) * bw
		at := from.Add(time.Duration(i) * step)
		if published[i] > 0 {
			top := y(published[i], ch.Max, ch.PlotH)
			ch.Bars = append(ch.Bars, bar{X: x, Y: top, W: max(bw-0.6, 0.6), H: float64(ch.PlotH) - top,
				Title: fmt.Sprintf("%s: %d published, %d handled, %d dead-lettered", at.Format(label), published[i], handled[i], dead[i])})
		}
		if dead[i] > 0 {
			top := y(dead[i], ch.Max, ch.PlotH)
			ch.DeadBars = append(ch.DeadBars, bar{X: x, Y: top, W: max(bw-0.6, 0.6), H: float64(ch.PlotH) - top,
				Title: fmt.Sprintf("%s: %d dead-lettered", at.Format(label), dead[i])})
		}
		mid := x + bw/2
		if sampled[i] {
			hp = append(hp, point(mid, y(handled[i], ch.Max, ch.PlotH)))
			bp = append(bp, point(mid, y(backlog[i], ch.BacklogMax, ch.BacklogH)))
			ch.LastBacklog = backlog[i]
		}
		if at.Truncate(every).Equal(at) {
			tl := at.Format("15:04")
			if every >= 24*time.Hour {
				tl = at.Format("Jan 2")
			}
			ch.Ticks = append(ch.Ticks, tick{X: x, Label: tl})
		}
	}
	ch.Handled = strings.Join(hp, " ")
	if len(bp) > 0 {
		first, last := strings.Split(bp[0], ","), strings.Split(bp[len(bp)-1], ",")
		ch.Backlog = first[0] + "," + strconv.Itoa(ch.BacklogH) + " " + strings.Join(bp, " ") + " " + last[0] + "," + strconv.Itoa(ch.BacklogH)
	}
	return ch, nil
}

// tickEvery is how far apart the labels of a chart over span are.
func tickEvery(span time.Duration) time.Duration {
	switch {
	case span <= 15*time.Minute:
		return 5 * time.Minute
	case span <= time.Hour:
		return 15 * time.Minute
	case span <= 6*time.Hour:
		return time.Hour
	case span <= 24*time.Hour:
		return 3 * time.Hour
	}
	return 24 * time.Hour
}

func point(x, y float64) string {
	return strconv.FormatFloat(x, 'f', 1, 64) + "," + strconv.FormatFloat(y, 'f', 1, 64)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for an axis.
func niceCeil(v uint64) uint64 {
	if v <= 1 {
		return 1
	}
	for p := uint64(1); ; p *= 10 {
		for _, m := range []uint64{1, 2, 5} {
			if m*p >= v {
				return m * p
			}
		}
	}
}
