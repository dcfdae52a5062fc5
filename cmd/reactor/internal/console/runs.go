package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/reactor-alerts/reactor/handlers"
)

// runQuery is the runs list's filter, like `reactor runs ls`: the group and
// the alert (matched by the server), the entry, failed runs only, and since
// when.
type runQuery struct {
	Group  string
	Entry  string
	Alert  string
	Failed bool
	Since  string
	Before uint64
}

func parseRunQuery(q url.Values, now time.Time) (runQuery, handlers.RunQuery, error) {
	rq := runQuery{
		Group:  strings.TrimSpace(q.Get("group")),
		Entry:  strings.TrimSpace(q.Get("entry")),
		Alert:  strings.TrimSpace(q.Get("alert")),
		Failed: q.Get("failed") != "",
		Since:  strings.TrimSpace(q.Get("since")),
	}
	hq := handlers.RunQuery{Group: rq.Group, Entry: rq.Entry, Failed: rq.Failed}
	if rq.Alert != "" {
		if seq, err := strconv.ParseUint(rq.Alert, 10, 64); err == nil && seq > 0 {
			hq.AlertSeq = seq
		} else {
			hq.AlertID = rq.Alert
		}
	}
	since, err := parseWhen(rq.Since, now)
	if err != nil {
		return rq, hq, fmt.Errorf("since: %w", err)
	}
	hq.Since = since
	if b := q.Get("before"); b != "" {
		if rq.Before, err = parseSeq(b); err != nil {
			return rq, hq, err
		}
		hq.Before = rq.Before
	}
	return rq, hq, nil
}

func (q runQuery) values() url.Values {
	v := url.Values{}
	for k, x := range map[string]string{"group": q.Group, "entry": q.Entry, "alert": q.Alert, "since": q.Since} {
		if x != "" {
			v.Set(k, x)
		}
	}
	if q.Failed {
		v.Set("failed", "1")
	}
	return v
}

type runsData struct {
	Q        runQuery
	Filtered bool
	Page     handlers.RunPage
	Older    string
	Newest   string
	Stream   string
	Budget   int
}

func (c *Console) runs(w http.ResponseWriter, r *http.Request) {
	q, hq, err := parseRunQuery(r.URL.Query(), time.Now())
	d := runsData{Q: q, Filtered: len(q.values()) > 0, Stream: handlers.RunsStream, Budget: c.cfg.ScanLimit}
	if err != nil {
		c.render(w, r, http.StatusBadRequest, "runs", page{Title: "Runs", Nav: "runs", Notice: err.Error(), Data: d})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	hq.Limit, hq.Budget = c.cfg.PageSize, c.cfg.ScanLimit
	d.Page, err = handlers.ListRuns(ctx, c.cfg.JS, hq)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	d.Older, d.Newest = pageLinks("/runs", q.values(), d.Page.Older, q.Before)
	c.render(w, r, http.StatusOK, "runs", page{Title: "Runs", Nav: "runs", Data: d})
}

func (c *Console) run(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	run, err := handlers.GetRun(ctx, c.cfg.JS, r.PathValue("id"))
	switch {
	case errors.Is(err, handlers.ErrRunNotFound):
		c.fail(w, r, http.StatusNotFound, err)
		return
	case err != nil:
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	c.render(w, r, http.StatusOK, "run", page{Title: "Run " + run.ID, Nav: "runs", Data: run})
}

// rerun runs a group's rules for an alert again (reactor runs rerun), and
// logs it with what it stored.
func (c *Console) rerun(w http.ResponseWriter, r *http.Request) {
	seq, err := parseSeq(r.PathValue("seq"))
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	group := r.PostForm.Get("group")
	back := fmt.Sprintf("/alerts/%d", seq)
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	res, err := handlers.Rerun(ctx, c.cfg.JS, c.cfg.Topology, group, seq)
	if err != nil {
		c.log.Warn("alert not re-run", "seq", seq, "group", group, "err", err, "remote_addr", r.RemoteAddr)
		redirect(w, r, back, "Not re-run: "+err.Error())
		return
	}
	c.log.Info("alert re-run", "seq", seq, "group", group, "subject", res.Subject, "stream", c.cfg.Topology.Alerts, "new_seq", res.Seq, "remote_addr", r.RemoteAddr)
	redirect(w, r, back, fmt.Sprintf("Alert %d goes through group %s again (stored as %d): its runs show below as they are recorded.", seq, group, res.Seq))
}
