package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

type dlqActionKind string

const (
	actionRedrive dlqActionKind = "redrive"
	actionPurge   dlqActionKind = "purge"
)

// allLimit bounds the dead letters an "all matching" action with a filter
// the server cannot apply collects: far above any sane DLQ.
const allLimit = 1_000_000

type confirmData struct {
	Action  dlqActionKind
	Verb    string
	Count   uint64
	Fields  [][2]string
	Back    string
	Summary string
}

// dlqAction redrives or purges dead letters: the ones selected (seq fields)
// or every one matching the filter (all=1 and the list's filter fields).
// Without confirm=yes it only counts them and asks.
func (c *Console) dlqAction(kind dlqActionKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			c.fail(w, r, http.StatusBadRequest, err)
			return
		}
		f := r.PostForm
		back := f.Get("back")
		if !strings.HasPrefix(back, "/dlq") || strings.HasPrefix(back, "//") {
			back = "/dlq"
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Minute)
		defer cancel()
		all := f.Get("all") == "1"
		q, err := parseDLQQuery(f)
		if err != nil {
			c.fail(w, r, http.StatusBadRequest, err)
			return
		}
		q.Before = 0
		var seqs []uint64
		if !all {
			for _, s := range f["seq"] {
				n, err := parseSeq(s)
				if err != nil {
					c.fail(w, r, http.StatusBadRequest, err)
					return
				}
				seqs = append(seqs, n)
			}
			if len(seqs) == 0 {
				redirect(w, r, back, "Nothing selected: tick the dead letters first.")
				return
			}
		}
		if f.Get("confirm") != "yes" {
			n := uint64(len(seqs))
			if all {
				if n, err = c.countMatching(ctx, q); err != nil {
					c.fail(w, r, http.StatusBadGateway, err)
					return
				}
			}
			c.confirm(w, r, kind, n, all, q, seqs, back)
			return
		}
		var notice string
		if all {
			notice, err = c.actOnAll(ctx, r, kind, q)
		} else {
			notice, err = c.actOnSeqs(ctx, r, kind, seqs)
		}
		if err != nil {
			c.fail(w, r, http.StatusBadGateway, err)
			return
		}
		if strings.HasPrefix(back, "/dlq/") {
			back = "/dlq" // the dead letter's page is gone
		}
		redirect(w, r, back, notice)
	}
}

func (c *Console) confirm(w http.ResponseWriter, r *http.Request, kind dlqActionKind, n uint64, all bool, q dlqQuery, seqs []uint64, back string) {
	d := confirmData{Action: kind, Count: n, Back: back, Verb: "Redrive"}
	if kind == actionPurge {
		d.Verb = "Purge"
	}
	d.Fields = append(d.Fields, [2]string{"confirm", "yes"}, [2]string{"back", back})
	if all {
		d.Fields = append(d.Fields, [2]string{"all", "1"})
		for k, vs := range q.values() {
			d.Fields = append(d.Fields, [2]string{k, vs[0]})
		}
		d.Summary = "Every dead letter in " + c.cfg.Topology.DLQ
		if v := q.values(); len(v) > 0 {
			d.Summary = "Every dead letter with " + describeFilter(q)
		}
	} else {
		var list []string
		for _, s := range seqs {
			d.Fields = append(d.Fields, [2]string{"seq", strconv.FormatUint(s, 10)})
			list = append(list, strconv.FormatUint(s, 10))
		}
		d.Summary = "Dead letter " + strings.Join(list, ", ")
		if len(seqs) > 1 {
			d.Summary = "Dead letters " + strings.Join(list, ", ")
		}
	}
	c.render(w, r, http.StatusOK, "confirm", page{Title: d.Verb + " dead letters", Nav: "dlq", Data: d})
}

func describeFilter(q dlqQuery) string {
	var parts []string
	for _, x := range [][2]string{{"subject", q.Subject}, {"reason", q.Reason}, {"group", q.Group}, {"error containing", q.Text}} {
		if x[1] != "" {
			parts = append(parts, fmt.Sprintf("%s %q", x[0], x[1]))
		}
	}
	return strings.Join(parts, ", ")
}

// countMatching counts the dead letters matching q: from the stream's
// state when the server applies the filter, by a scan otherwise.
func (c *Console) countMatching(ctx context.Context, q dlqQuery) (uint64, error) {
	if q.serverOnly() {
		s, err := c.cfg.JS.Stream(ctx, c.cfg.Topology.DLQ)
		if err != nil {
			return 0, err
		}
		if q.Subject == "" {
			return s.CachedInfo().State.Msgs, nil
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(c.cfg.Topology.DLQSubject(q.Subject)))
		if err != nil {
			return 0, err
		}
		var n uint64
		for _, k := range info.State.Subjects {
			n += k
		}
		return n, nil
	}
	seqs, err := c.matchingSeqs(ctx, q)
	return uint64(len(seqs)), err
}

func (c *Console) matchingSeqs(ctx context.Context, q dlqQuery) ([]uint64, error) {
	win, ok, err := c.dlqWindow(ctx, q, allLimit, allLimit)
	if err != nil || !ok {
		return nil, err
	}
	sc, err := scanBack(ctx, c, win)
	if err != nil {
		return nil, err
	}
	seqs := make([]uint64, len(sc.Msgs))
	for i, m := range sc.Msgs {
		seqs[len(seqs)-1-i] = m.Sequence // oldest first
	}
	return seqs, nil
}

func (c *Console) actOnAll(ctx context.Context, r *http.Request, kind dlqActionKind, q dlqQuery) (string, error) {
	if !q.serverOnly() {
		seqs, err := c.matchingSeqs(ctx, q)
		if err != nil {
			return "", err
		}
		return c.actOnSeqs(ctx, r, kind, seqs)
	}
	switch kind {
	case actionPurge:
		n, err := c.dlq.PurgeAll(ctx, q.Subject)
		if err != nil {
			return "", err
		}
		c.log.Info("dead letters purged", "count", n, "subject", q.Subject, "stream", c.cfg.Topology.DLQ, "remote_addr", r.RemoteAddr)
		return fmt.Sprintf("Purged %s.", plural(n, "dead letter")), nil
	default:
		ok, failed, err := c.dlq.RedriveAll(ctx, q.Subject, func(res stream.Redriven, err error) { c.logRedrive(r, res, err) })
		if err != nil {
			return "", err
		}
		c.log.Info("dead letters redriven", "count", ok, "failed", failed, "subject", q.Subject, "stream", c.cfg.Topology.DLQ, "remote_addr", r.RemoteAddr)
		return redriveNotice(ok, failed, nil), nil
	}
}

func (c *Console) actOnSeqs(ctx context.Context, r *http.Request, kind dlqActionKind, seqs []uint64) (string, error) {
	ok, failed := 0, 0
	var errs []error
	for _, seq := range seqs {
		var err error
		if kind == actionPurge {
			var e stream.DLQEntry
			e, err = c.dlq.Purge(ctx, seq)
			if err == nil {
				c.log.Info("dead letter purged", "seq", seq, "subject", e.Subject, "reason", e.Reason, "stream", c.cfg.Topology.DLQ, "remote_addr", r.RemoteAddr)
			}
		} else {
			var res stream.Redriven
			res, err = c.dlq.Redrive(ctx, seq)
			c.logRedrive(r, res, err)
		}
		if err != nil {
			failed++
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		ok++
	}
	if kind == actionPurge {
		if failed > 0 {
			c.log.Warn("dead letters not purged", "count", failed, "err", errors.Join(errs...), "remote_addr", r.RemoteAddr)
			return fmt.Sprintf("Purged %s; %d failed: %v", plural(uint64(ok), "dead letter"), failed, errs[0]), nil
		}
		return fmt.Sprintf("Purged %s.", plural(uint64(ok), "dead letter")), nil
	}
	return redriveNotice(ok, failed, errs), nil
}

func (c *Console) logRedrive(r *http.Request, res stream.Redriven, err error) {
	if err != nil {
		c.log.Warn("dead letter not redriven", "seq", res.DLQSequence, "err", err, "remote_addr", r.RemoteAddr)
		return
	}
	c.log.Info("dead letter redriven", "seq", res.DLQSequence, "subject", res.Subject, "stream", res.Stream,
		"new_seq", res.Sequence, "msg_id", res.MsgID, "duplicate", res.Duplicate, "remote_addr", r.RemoteAddr)
}

func redriveNotice(ok, failed int, errs []error) string {
	s := fmt.Sprintf("Redrove %s: back in processing for the groups that dead-lettered them.", plural(uint64(ok), "dead letter"))
	if ok == 1 {
		s = "Redrove 1 dead letter: back in processing for the group that dead-lettered it."
	}
	if failed > 0 {
		s += fmt.Sprintf(" %d failed and stay in the DLQ", failed)
		if len(errs) > 0 {
			s += fmt.Sprintf(": %v", errs[0])
		}
	}
	return s
}

func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatUint(n, 10) + " " + noun + "s"
}

type groupsData struct {
	Groups []stream.GroupStatus
	Stream string
}

func (c *Console) groups(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	st, ok := c.readStatus(ctx, w, r)
	if !ok {
		return
	}
	c.render(w, r, http.StatusOK, "groups", page{Title: "Groups", Nav: "groups", Data: groupsData{Groups: st.Groups, Stream: c.cfg.Topology.WithDefaults().Alerts}})
}

func (c *Console) pauseGroup(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var until time.Time
	if s := r.PostFormValue("for"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			c.fail(w, r, http.StatusBadRequest, fmt.Errorf("bad pause duration %q: want e.g. 15m or 1h, or nothing for until resumed", s))
			return
		}
		until = time.Now().Add(d)
	}
	got, err := stream.PauseGroup(r.Context(), c.cfg.JS, c.cfg.Topology, name, until)
	if errors.Is(err, stream.ErrGroupNotFound) {
		c.fail(w, r, http.StatusNotFound, err)
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	c.log.Info("group paused", "consumer", name, "stream", c.cfg.Topology.WithDefaults().Alerts, "until", got.UTC(), "remote_addr", r.RemoteAddr)
	notice := fmt.Sprintf("Paused group %s until resumed: its processes receive nothing meanwhile.", name)
	if !until.IsZero() {
		notice = fmt.Sprintf("Paused group %s until %s UTC.", name, got.UTC().Format("2006-01-02 15:04:05"))
	}
	redirect(w, r, "/groups", notice)
}

func (c *Console) resumeGroup(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := stream.ResumeGroup(r.Context(), c.cfg.JS, c.cfg.Topology, name)
	if errors.Is(err, stream.ErrGroupNotFound) {
		c.fail(w, r, http.StatusNotFound, err)
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	c.log.Info("group resumed", "consumer", name, "stream", c.cfg.Topology.WithDefaults().Alerts, "remote_addr", r.RemoteAddr)
	redirect(w, r, "/groups", fmt.Sprintf("Resumed group %s.", name))
}
