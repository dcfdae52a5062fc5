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
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	st, ok := c.readStatus(ctx, w, r)
	if !ok {
		return
	}
	d := overviewData{Status: st, AlertStream: c.cfg.Topology.WithDefaults().Alerts}
	if c.cfg.Server != nil {
		srv := c.cfg.Server()
		d.Server = &srv
	}
	c.timeline.sample(ctx, c.cfg.SampleInterval)
	var backlog uint64
	for _, g := range st.Groups {
		backlog += g.Backlog
	}
	var err error
	d.Chart, err = c.chart(ctx, st.Time, backlog)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	c.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Refresh: c.cfg.Refresh, Data: d})
}

// chart is the overview's per-minute chart, laid out for an SVG.
type chart struct {
	W, H, PlotH  int
	Minutes      int
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

// chart lays out the per-minute chart up to now, when the groups' backlog
// is backlog.
func (c *Console) chart(ctx context.Context, now time.Time, backlogNow uint64) (chart, error) {
	now = now.UTC()
	end := now.Truncate(time.Minute)
	from := end.Add(-c.cfg.ChartWindow + time.Minute)
	published, err := c.timeline.perMinute(ctx, c.cfg.Topology.Alerts, from, now)
	if err != nil {
		return chart{}, err
	}
	dead, err := c.timeline.perMinute(ctx, c.cfg.Topology.DLQ, from, now)
	if err != nil {
		return chart{}, err
	}
	n := len(published)
	handled, backlog, sampled := c.timeline.minuteSamples(from, n)
	backlog[n-1], sampled[n-1] = backlogNow, true
	ch := chart{W: 760, PlotH: 150, BacklogH: 60, Minutes: n, From: from, SampledSince: c.timeline.since()}
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
	for i := range n {
		x := float64(i) * bw
		at := from.Add(time.Duration(i) * time.Minute)
		if published[i] > 0 {
			top := y(published[i], ch.Max, ch.PlotH)
			ch.Bars = append(ch.Bars, bar{X: x, Y: top, W: max(bw-0.6, 0.6), H: float64(ch.PlotH) - top,
				Title: fmt.Sprintf("%s: %d published, %d handled, %d dead-lettered", at.Format("15:04"), published[i], handled[i], dead[i])})
		}
		if dead[i] > 0 {
			top := y(dead[i], ch.Max, ch.PlotH)
			ch.DeadBars = append(ch.DeadBars, bar{X: x, Y: top, W: max(bw-0.6, 0.6), H: float64(ch.PlotH) - top,
				Title: fmt.Sprintf("%s: %d dead-lettered", at.Format("15:04"), dead[i])})
		}
		mid := x + bw/2
		if sampled[i] {
			hp = append(hp, point(mid, y(handled[i], ch.Max, ch.PlotH)))
			bp = append(bp, point(mid, y(backlog[i], ch.BacklogMax, ch.BacklogH)))
			ch.LastBacklog = backlog[i]
		}
		if at.Minute()%30 == 0 {
			ch.Ticks = append(ch.Ticks, tick{X: x, Label: at.Format("15:04")})
		}
	}
	ch.Handled = strings.Join(hp, " ")
	if len(bp) > 0 {
		first, last := strings.Split(bp[0], ","), strings.Split(bp[len(bp)-1], ",")
		ch.Backlog = first[0] + "," + strconv.Itoa(ch.BacklogH) + " " + strings.Join(bp, " ") + " " + last[0] + "," + strconv.Itoa(ch.BacklogH)
	}
	return ch, nil
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
