package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// alertQuery is the alerts list's filter, from the URL.
type alertQuery struct {
	Subject  string
	Severity string
	Label    string
	Text     string
	Since    string
	Until    string
	Before   uint64

	since, until time.Time
}

func parseAlertQuery(q url.Values, now time.Time) (alertQuery, error) {
	a := alertQuery{
		Subject:  strings.TrimSpace(q.Get("subject")),
		Severity: strings.TrimSpace(q.Get("severity")),
		Label:    strings.TrimSpace(q.Get("label")),
		Text:     strings.TrimSpace(q.Get("q")),
		Since:    strings.TrimSpace(q.Get("since")),
		Until:    strings.TrimSpace(q.Get("until")),
	}
	var err error
	if a.since, err = parseWhen(a.Since, now); err != nil {
		return a, fmt.Errorf("since: %w", err)
	}
	if a.until, err = parseWhen(a.Until, now); err != nil {
		return a, fmt.Errorf("until: %w", err)
	}
	if b := q.Get("before"); b != "" {
		if a.Before, err = parseSeq(b); err != nil {
			return a, err
		}
	}
	if a.Subject != "" {
		if _, err := processor.ParsePattern(a.Subject); err != nil {
			return a, fmt.Errorf("bad subject pattern: %v (tokens separated by dots, * for one token, > for the rest)", err)
		}
	}
	return a, nil
}

// parseWhen reads a time as a duration ago ("90m", "2h"), a date and time
// ("2026-11-30 09:00", "2026-11-30T09:00", UTC) or RFC 3339.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration ago (90m, 2h) nor a time (2026-11-30 09:00 UTC)", s)
}

// values is q as URL parameters, without before, for links that keep the
// filter.
func (a alertQuery) values() url.Values {
	v := url.Values{}
	for k, x := range map[string]string{"subject": a.Subject, "severity": a.Severity, "label": a.Label, "q": a.Text, "since": a.Since, "until": a.Until} {
		if x != "" {
			v.Set(k, x)
		}
	}
	return v
}

func (a alertQuery) Filtered() bool { return len(a.values()) > 0 }

// matcher is the part of the filter the console applies itself; nil when
// the server's subject filter is all there is.
func (a alertQuery) matcher() func(stream.StoredMsg) bool {
	if a.Severity == "" && a.Label == "" && a.Text == "" {
		return nil
	}
	text := []byte(strings.ToLower(a.Text))
	key, val, hasVal := strings.Cut(a.Label, "=")
	// Words that a matching payload must hold, checked before decoding it:
	// most alerts fail a filter on them, and decoding costs ten times more.
	var must [][]byte
	for _, w := range []string{a.Severity, key, val} {
		if w != "" {
			must = append(must, []byte(strings.ToLower(w)))
		}
	}
	return func(m stream.StoredMsg) bool {
		if len(text) > 0 && !containsFold(m.Data, text) {
			return false
		}
		for _, w := range must {
			if !containsFold(m.Data, w) {
				return false
			}
		}
		if a.Severity == "" && a.Label == "" {
			return true
		}
		al, err := stream.DecodeAlert(m.Subject, m.Data)
		if err != nil {
			return false
		}
		if a.Severity != "" && !strings.EqualFold(al.Severity, a.Severity) {
			return false
		}
		if a.Label != "" {
			v, ok := al.Labels[key]
			if !ok || hasVal && v != val {
				return false
			}
		}
		return true
	}
}

// containsFold reports whether data holds lower (lower case), ignoring
// ASCII case, without allocating.
func containsFold(data, lower []byte) bool {
	if len(lower) == 0 {
		return true
	}
	first := lower[0]
	for i := 0; i+len(lower) <= len(data); i++ {
		if c := data[i]; (c == first || c|0x20 == first) && bytes.EqualFold(data[i:i+len(lower)], lower) {
			return true
		}
	}
	return false
}

// alertRow is one line of the alerts list.
type alertRow struct {
	Seq     uint64
	Time    time.Time
	Subject string
	// RedrivenFor is the group a redriven alert was stored for.
	RedrivenFor string
	Severity    string
	Summary     string
	Labels      []string
	Invalid     string
	// Fates are what became of it in each group it is for.
	Fates []groupFate
}

// rowOf is the list's row of m, and m's alert (nil if it is not one).
func (c *Console) rowOf(m stream.StoredMsg) (alertRow, *stream.Alert) {
	r := alertRow{Seq: m.Sequence, Time: m.Time.UTC(), Subject: m.Subject}
	r.RedrivenFor, r.Subject, _ = c.redriven(m.Subject)
	a, err := stream.DecodeAlert(r.Subject, m.Data)
	if err != nil {
		r.Invalid = err.Error()
		r.Summary = truncate(string(m.Data), 120)
		return r, nil
	}
	r.Severity, r.Summary = a.Severity, truncate(a.Summary, 200)
	for k, v := range a.Labels {
		r.Labels = append(r.Labels, k+"="+v)
	}
	slices.Sort(r.Labels)
	return r, &a
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

type alertsData struct {
	Q    alertQuery
	Rows []alertRow
	// Total is how many alerts the filter matches, when TotalKnown; else
	// the page says how many of the sequences it read (Scan) match.
	Total      uint64
	TotalKnown bool
	Older      string // URL of the next page, "" at the end
	Newest     string // URL of the first page, "" on it
	Scan       scanned
	Stream     string
	Severities []string
	Empty      bool
}

func (c *Console) alerts(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UTC()
	q, err := parseAlertQuery(r.URL.Query(), now)
	d := alertsData{Q: q, Stream: c.cfg.Topology.Alerts, Severities: severities}
	if err != nil {
		c.render(w, r, http.StatusBadRequest, "alerts", page{Title: "Alerts", Nav: "alerts", Notice: err.Error(), Data: d})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	lo, hi, ok, err := bounds(ctx, c, c.cfg.Topology.Alerts, q.since, q.until, q.Before)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	if ok {
		win := window{stream: c.cfg.Topology.Alerts, lo: lo, hi: hi, want: c.cfg.PageSize, budget: c.cfg.ScanLimit, matches: q.matcher()}
		if q.Subject != "" {
			// The alerts of the subject, and those redriven for a group.
			win.filter = []string{q.Subject, c.cfg.Topology.RedrivePrefix + ".*." + q.Subject}
		}
		if d.Scan, err = scanBack(ctx, c, win); err != nil {
			c.fail(w, r, http.StatusBadGateway, err)
			return
		}
	}
	decoded := make([]*stream.Alert, 0, len(d.Scan.Msgs))
	for _, m := range d.Scan.Msgs {
		row, a := c.rowOf(m)
		d.Rows, decoded = append(d.Rows, row), append(decoded, a)
	}
	if n := len(d.Scan.Msgs); n > 0 {
		c.listFates(ctx, d.Rows, decoded, d.Scan.Msgs[n-1].Time)
	}
	if d.Total, d.TotalKnown, err = c.alertsTotal(ctx, q, lo, ok, d.Scan); err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	d.Older, d.Newest = pageLinks("/alerts", q.values(), d.Scan.Older, q.Before)
	d.Empty = len(d.Rows) == 0
	c.render(w, r, http.StatusOK, "alerts", page{Title: "Alerts", Nav: "alerts", Data: d})
}

// alertsTotal is how many alerts the filter q matches in its whole window
// (whatever page shows), when the console can know without reading more
// than the page did: a filter the server applies is counted by the server
// (two consumer infos), and a filter the console applies is known when the
// first page read the window to its start (lo). ok reports a window that
// is not empty.
func (c *Console) alertsTotal(ctx context.Context, q alertQuery, lo uint64, ok bool, scan scanned) (uint64, bool, error) {
	switch {
	case q.matcher() != nil && q.Before == 0 && (!ok || scan.From <= lo):
		return uint64(scan.Matched), true, nil
	case q.matcher() != nil:
		return 0, false, nil
	case !ok && q.Before == 0:
		return 0, true, nil
	case q.Subject == "" && q.since.IsZero() && q.until.IsZero():
		s, err := c.cfg.JS.Stream(ctx, c.cfg.Topology.Alerts)
		if err != nil {
			return 0, false, err
		}
		return s.CachedInfo().State.Msgs, true, nil
	}
	lo, hi, ok, err := bounds(ctx, c, c.cfg.Topology.Alerts, q.since, q.until, 0)
	if err != nil || !ok {
		return 0, err == nil, err
	}
	var filter []string
	if q.Subject != "" {
		filter = []string{q.Subject, c.cfg.Topology.RedrivePrefix + ".*." + q.Subject}
	}
	from, err := countFrom(ctx, c.cfg.JS, c.cfg.Topology.Alerts, lo, filter)
	if err != nil {
		return 0, false, err
	}
	after, err := countFrom(ctx, c.cfg.JS, c.cfg.Topology.Alerts, hi+1, filter)
	if err != nil {
		return 0, false, err
	}
	return sub(from, after), true, nil
}

// deadLetterSearch bounds the dead letters an alert's page reads to find
// its own.
const deadLetterSearch = 2000

var severities = []string{stream.SeverityInfo, stream.SeverityWarning, stream.SeverityError, stream.SeverityCritical}

// redriven splits a subject of the alert stream: a dead letter redriven
// for a group is stored on RedrivePrefix.<group>.<subject>.
func (c *Console) redriven(stored string) (group, subject string, ok bool) {
	rest, ok := strings.CutPrefix(stored, c.cfg.Topology.RedrivePrefix+".")
	if !ok {
		return "", stored, false
	}
	group, subject, ok = strings.Cut(rest, ".")
	if !ok {
		return "", stored, false
	}
	return group, subject, true
}

// alertData is an alert's page.
type alertData struct {
	Msg         stream.StoredMsg
	Subject     string // the alert's subject, which its handlers' patterns match
	RedrivenFor string
	Alert       *stream.Alert
	Invalid     string
	Payload     string
	Headers     []header
	MsgID       string
	TraceID     string
	Redriven    string
	Groups      []groupFate
	DeadLetts   []stream.DLQEntry
	DLQLimited  bool
	Runs        []handlers.Run // every group's, oldest first
}

type header struct{ Key, Value string }

func (c *Console) alert(w http.ResponseWriter, r *http.Request) {
	seq, err := parseSeq(r.PathValue("seq"))
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	s, err := c.cfg.JS.Stream(ctx, c.cfg.Topology.Alerts)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("no alert %d in %s: it expired, or never was", seq, c.cfg.Topology.Alerts))
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	m := stream.StoredMsg{Stream: c.cfg.Topology.Alerts, Subject: raw.Subject, Data: raw.Data, Header: raw.Header, Sequence: raw.Sequence, Time: raw.Time.UTC()}
	d := alertData{Msg: m, Payload: prettyPayload(m.Data), Headers: headersOf(m.Header), MsgID: m.Header.Get(nats.MsgIdHdr), Redriven: m.Header.Get(stream.HeaderRedrivenFrom)}
	if tp := stream.Traceparent(m.Header); tp != "" {
		if parts := strings.Split(tp, "-"); len(parts) == 4 {
			d.TraceID = parts[1]
		}
	}
	d.RedrivenFor, d.Subject, _ = c.redriven(m.Subject)
	if a, err := stream.DecodeAlert(d.Subject, m.Data); err != nil {
		d.Invalid = err.Error()
	} else {
		d.Alert = &a
	}
	// Dead letters of this alert: those of its subject, stored after it,
	// whose origin is it; the newest deadLetterSearch of them.
	seqText := strconv.FormatUint(seq, 10)
	_, subject, _ := c.redriven(m.Subject)
	lo, hi, ok, err := bounds(ctx, c, c.cfg.Topology.DLQ, m.Time, time.Time{}, 0)
	var scan scanned
	if err == nil && ok {
		scan, err = scanBack(ctx, c, window{
			stream: c.cfg.Topology.DLQ, filter: []string{c.cfg.Topology.DLQSubject(subject)},
			lo: lo, hi: hi, want: 20, budget: min(c.cfg.ScanLimit, deadLetterSearch),
			matches: func(dm stream.StoredMsg) bool {
				return dm.Header.Get(stream.HeaderStream) == c.cfg.Topology.Alerts && dm.Header.Get(stream.HeaderSequence) == seqText
			},
		})
	}
	if err == nil {
		for _, dm := range scan.Msgs {
			e := stream.DLQEntry{DeadLetter: stream.ParseDeadLetter(dm.Subject, dm.Data, dm.Header), DLQSubject: dm.Subject, Stored: dm.Time}
			e.DLQSequence = dm.Sequence
			d.DeadLetts = append(d.DeadLetts, e)
		}
		d.DLQLimited = scan.Limited
	}
	if d.Runs, err = handlers.AlertRuns(ctx, c.cfg.JS, "", seq); err != nil {
		c.log.Warn("console: read runs", "seq", seq, "err", err)
	}
	facts := alertFacts{seq: seq, subject: d.Subject, redrivenFor: d.RedrivenFor, alert: d.Alert, dead: d.DeadLetts}
	st, err := stream.ReadStatus(ctx, c.cfg.JS, c.cfg.Topology)
	if err == nil {
		for _, g := range st.Groups {
			var last *handlers.Run
			for i := range d.Runs { // oldest first: keep the group's newest
				if d.Runs[i].Group == g.Name {
					last = &d.Runs[i]
				}
			}
			d.Groups = append(d.Groups, c.fate(facts, g, last))
		}
	}
	c.render(w, r, http.StatusOK, "alert", page{Title: fmt.Sprintf("Alert %d", seq), Nav: "alerts", Data: d})
}

func headersOf(h nats.Header) []header {
	var out []header
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, header{k, v})
		}
	}
	slices.SortFunc(out, func(a, b header) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// prettyPayload indents a JSON payload, and shows anything else as text.
func prettyPayload(data []byte) string {
	var buf bytes.Buffer
	if json.Valid(data) && json.Indent(&buf, data, "", "  ") == nil {
		return buf.String()
	}
	return string(data)
}
