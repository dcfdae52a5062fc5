package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// dlqQuery is the dead-letter list's filter, like `reactor dlq ls`: the
// original subject (matched by the server), plus the reason, the group and
// a text in the error.
type dlqQuery struct {
	Subject string
	Reason  string
	Group   string
	Text    string
	Before  uint64
}

func parseDLQQuery(q url.Values) (dlqQuery, error) {
	d := dlqQuery{
		Subject: strings.TrimSpace(q.Get("subject")),
		Reason:  strings.TrimSpace(q.Get("reason")),
		Group:   strings.TrimSpace(q.Get("group")),
		Text:    strings.TrimSpace(q.Get("q")),
	}
	if d.Subject != "" {
		if _, err := processor.ParsePattern(d.Subject); err != nil {
			return d, fmt.Errorf("bad subject pattern: %v (tokens separated by dots, * for one token, > for the rest)", err)
		}
	}
	if b := q.Get("before"); b != "" {
		var err error
		if d.Before, err = parseSeq(b); err != nil {
			return d, err
		}
	}
	return d, nil
}

func (d dlqQuery) values() url.Values {
	v := url.Values{}
	for k, x := range map[string]string{"subject": d.Subject, "reason": d.Reason, "group": d.Group, "q": d.Text} {
		if x != "" {
			v.Set(k, x)
		}
	}
	return v
}

// serverOnly reports a filter the server applies alone: RedriveAll and
// PurgeAll take it as is.
func (d dlqQuery) serverOnly() bool { return d.Reason == "" && d.Group == "" && d.Text == "" }

func (d dlqQuery) matcher() func(stream.StoredMsg) bool {
	if d.serverOnly() {
		return nil
	}
	text := strings.ToLower(d.Text)
	return func(m stream.StoredMsg) bool {
		if d.Reason != "" && m.Header.Get(stream.HeaderReason) != d.Reason {
			return false
		}
		if d.Group != "" && m.Header.Get(stream.HeaderGroup) != d.Group {
			return false
		}
		if text != "" && !strings.Contains(strings.ToLower(stream.ParseDeadLetter(m.Subject, m.Data, m.Header).Error), text) {
			return false
		}
		return true
	}
}

func (c *Console) dlqWindow(ctx context.Context, q dlqQuery, want, budget int) (window, bool, error) {
	lo, hi, ok, err := bounds(ctx, c, c.cfg.Topology.DLQ, time.Time{}, time.Time{}, q.Before)
	w := window{stream: c.cfg.Topology.DLQ, lo: lo, hi: hi, want: want, budget: budget, matches: q.matcher()}
	if q.Subject != "" {
		w.filter = []string{c.cfg.Topology.DLQSubject(q.Subject)}
	}
	return w, ok, err
}

type dlqRow struct {
	Seq        uint64
	Stored     time.Time
	Subject    string
	Reason     string
	Error      string
	Group      string
	Deliveries int
	First      time.Time
	Last       time.Time
}

type dlqData struct {
	Q       dlqQuery
	Rows    []dlqRow
	Older   string
	Newest  string
	Scan    scanned
	Stream  string
	Total   uint64
	Reasons []string
	Hidden  url.Values // the filter, for the bulk action forms
}

var reasons = []string{stream.ReasonPermanent, stream.ReasonMaxDeliveries, stream.ReasonNoHandler}

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request) {
	q, err := parseDLQQuery(r.URL.Query())
	d := dlqData{Q: q, Stream: c.cfg.Topology.DLQ, Reasons: reasons, Hidden: q.values()}
	if err != nil {
		c.render(w, r, http.StatusBadRequest, "dlq", page{Title: "Dead letters", Nav: "dlq", Notice: err.Error(), Data: d})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	win, ok, err := c.dlqWindow(ctx, q, c.cfg.PageSize, c.cfg.ScanLimit)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	if s, err := c.cfg.JS.Stream(ctx, c.cfg.Topology.DLQ); err == nil {
		d.Total = s.CachedInfo().State.Msgs
	}
	if ok {
		if d.Scan, err = scanBack(ctx, c, win); err != nil {
			c.fail(w, r, http.StatusBadGateway, err)
			return
		}
	}
	for _, m := range d.Scan.Msgs {
		dl := stream.ParseDeadLetter(m.Subject, m.Data, m.Header)
		first, _, _ := strings.Cut(dl.Error, "\n")
		d.Rows = append(d.Rows, dlqRow{Seq: m.Sequence, Stored: m.Time.UTC(), Subject: dl.Subject, Reason: dl.Reason,
			Error: truncate(first, 160), Group: dl.Group, Deliveries: dl.Deliveries, First: dl.FirstAttempt, Last: dl.LastAttempt})
	}
	d.Older, d.Newest = pageLinks("/dlq", q.values(), d.Scan.Older, q.Before)
	c.render(w, r, http.StatusOK, "dlq", page{Title: "Dead letters", Nav: "dlq", Data: d})
}

type deadLetterData struct {
	Entry   stream.DLQEntry
	Headers []header
	Payload string
	Runs    []handlers.Run // the runs that failed before it, oldest first
}

func (c *Console) deadLetter(w http.ResponseWriter, r *http.Request) {
	seq, err := parseSeq(r.PathValue("seq"))
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	e, err := c.dlq.Get(r.Context(), seq)
	if errors.Is(err, stream.ErrDeadLetterNotFound) {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("no dead letter %d in %s: redriven or purged already?", seq, c.cfg.Topology.DLQ))
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	d := deadLetterData{Entry: e, Headers: headersOf(e.RawHeader), Payload: prettyPayload(e.Data)}
	if e.Group != "" && e.Stream == c.cfg.Topology.Alerts && e.Sequence > 0 {
		// The runs that led to it: the group's runs of the alert up to the
		// moment it was dead-lettered, that did not succeed.
		runs, err := handlers.AlertRuns(r.Context(), c.cfg.JS, e.Group, e.Sequence)
		if err != nil {
			c.log.Warn("console: read runs", "seq", e.Sequence, "err", err)
		}
		for _, run := range runs {
			if run.Outcome != handlers.RunOK && !run.Started.After(e.Stored) {
				d.Runs = append(d.Runs, run)
			}
		}
	}
	c.render(w, r, http.StatusOK, "deadletter", page{Title: fmt.Sprintf("Dead letter %d", seq), Nav: "dlq", Data: d})
}
