// Package console is reactor's web console: the streams and groups at a
// glance, the alert history, the dead letters and the groups, with the
// actions an operator needs (redrive, purge, pause, resume).
//
// Pages are rendered on the server from embedded templates; a little
// JavaScript refreshes the overview and asks before a bulk action, and
// everything works without it. Lists are paged by stream sequence, newest
// first, and never read a whole stream: a page reads at most Config.ScanLimit
// sequences and offers the older ones on the next.
//
// Actions are POSTs behind net/http's CrossOriginProtection, and each is
// logged with what it changed. Authentication is the listener's business
// (cmd/reactor/http.go): mount the console behind it.
package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/stream"
)

// Defaults of Config.
const (
	// PageSizeDefault is how many alerts or dead letters a page lists.
	PageSizeDefault = 50
	// ScanLimitDefault bounds the stream sequences a filtered list reads
	// for one page; the page then offers the older ones.
	ScanLimitDefault = 10_000
	// RefreshDefault is how often the overview refreshes itself.
	RefreshDefault = 5 * time.Second
	// ChartWindowAutoMax bounds the range the overview's chart picks by
	// itself: the smallest of the ranges it offers (chartRanges) that
	// covers the alert stream's age, at most this.
	ChartWindowAutoMax = 6 * time.Hour
	// SampleIntervalDefault is how often Run samples the groups' progress
	// for the chart's handled and backlog series.
	SampleIntervalDefault = 15 * time.Second
)

// Config configures a Console. Only JS is required.
type Config struct {
	// JS is what the console reads and acts through. Required.
	JS jetstream.JetStream
	// Topology names reactor's streams. Defaults to stream's defaults.
	Topology stream.Topology
	// Server describes the server on the overview (stream.Conn's
	// ServerStatus, which holds no credentials). Defaults to none shown.
	Server func() stream.ServerStatus
	// Logger logs every action with what it changed. Defaults to
	// discarding.
	Logger *slog.Logger
	// PageSize is how many items a list page shows. Defaults to
	// PageSizeDefault.
	PageSize int
	// ScanLimit bounds the sequences a filtered list page reads. Defaults
	// to ScanLimitDefault.
	ScanLimit int
	// Refresh is how often the overview reloads its numbers in the
	// browser. Defaults to RefreshDefault.
	Refresh time.Duration
	// ChartWindow is how far back the overview's chart goes when the page
	// asks for none of the ranges it offers (?range=15m, 1h, 6h, 24h, 7d).
	// Defaults to the smallest of them that covers the alert stream's age,
	// up to ChartWindowAutoMax: a fresh install's alerts are not a spike in
	// the chart's last pixels.
	ChartWindow time.Duration
	// SampleInterval is how often Run samples the groups. Defaults to
	// SampleIntervalDefault.
	SampleInterval time.Duration
	// Rules are the rules of the process serving the console, if it runs
	// any, and Group the group it runs them in: they tell an alert the
	// group filtered on purpose from one handled without a run record.
	// Defaults to none.
	Rules *handlers.Rules
	Group string
}

func (c Config) withDefaults() Config {
	c.Topology = c.Topology.WithDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PageSize == 0 {
		c.PageSize = PageSizeDefault
	}
	if c.ScanLimit == 0 {
		c.ScanLimit = ScanLimitDefault
	}
	if c.Refresh == 0 {
		c.Refresh = RefreshDefault
	}
	if c.SampleInterval == 0 {
		c.SampleInterval = SampleIntervalDefault
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.JS == nil:
		return errors.New("console: Config.JS is required")
	case c.PageSize < 1 || c.ScanLimit < c.PageSize:
		return fmt.Errorf("console: page size %d and scan limit %d: want 1 <= page size <= scan limit", c.PageSize, c.ScanLimit)
	case c.Refresh < 0 || c.ChartWindow < 0 || c.ChartWindow > 0 && c.ChartWindow < time.Minute || c.SampleInterval < 0:
		return errors.New("console: negative refresh or sample interval, or a chart window under a minute")
	}
	return nil
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console serves the web console. It is an http.Handler; Run samples the
// groups for the overview's chart.
type Console struct {
	cfg     Config
	dlq     *stream.DLQ
	log     *slog.Logger
	pages   map[string]*template.Template
	handler http.Handler

	timeline *timeline
}

// New returns a console reading and acting through cfg.JS.
func New(cfg Config) (*Console, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Console{
		cfg:      cfg,
		dlq:      stream.NewDLQ(cfg.JS, cfg.Topology),
		log:      cfg.Logger,
		timeline: newTimeline(cfg.JS, cfg.Topology),
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c.pages = pages
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(http.FileServerFS(static))))
	mux.HandleFunc("GET /{$}", c.overview)
	mux.HandleFunc("GET /alerts", c.alerts)
	mux.HandleFunc("GET /alerts/{seq}", c.alert)
	mux.HandleFunc("POST /alerts/{seq}/rerun", c.rerun)
	mux.HandleFunc("GET /runs", c.runs)
	mux.HandleFunc("GET /runs/{id}", c.run)
	mux.HandleFunc("GET /dlq", c.deadLetters)
	mux.HandleFunc("GET /dlq/{seq}", c.deadLetter)
	mux.HandleFunc("POST /dlq/redrive", c.dlqAction(actionRedrive))
	mux.HandleFunc("POST /dlq/purge", c.dlqAction(actionPurge))
	mux.HandleFunc("GET /groups", c.groups)
	mux.HandleFunc("POST /groups/{name}/pause", c.pauseGroup)
	mux.HandleFunc("POST /groups/{name}/resume", c.resumeGroup)
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reason := "cross-origin request"
		if err := cop.Check(r); err != nil {
			reason = err.Error()
		}
		// As the HTTP listener logs a refused token: one line, with why.
		c.log.Warn("http request rejected", "path", r.URL.Path, "code", http.StatusForbidden, "remote", r.RemoteAddr, "reason", reason)
		http.Error(w, reason, http.StatusForbidden)
	}))
	c.handler = cop.Handler(securityHeaders(mux))
	return c, nil
}

// ServeHTTP serves the console's pages, assets and actions.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

// Run samples the groups' progress every Config.SampleInterval until ctx is
// done, for the overview chart's handled and backlog series (the streams
// themselves say when alerts and dead letters were stored, not when they
// were handled). Without Run, the overview samples when it is viewed.
func (c *Console) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.SampleInterval)
	defer t.Stop()
	for {
		c.timeline.sample(ctx, c.cfg.SampleInterval)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; form-action 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

func cacheFor(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		h.ServeHTTP(w, r)
	})
}

// page is what every template gets: the page's own data and the chrome.
type page struct {
	Title   string
	Nav     string
	Refresh time.Duration
	Notice  string
	Now     time.Time
	Data    any
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// render writes a page, or a plain error if its template fails: a half
// written page would hide the error.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.Now = time.Now().UTC()
	if p.Notice == "" {
		p.Notice = takeNotice(w, r)
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := c.pages[name].ExecuteTemplate(buf, "layout", p); err != nil {
		c.log.Error("render console page", "page", name, "err", err)
		http.Error(w, "console: cannot render the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail renders an error page: a missing item is 404, a bad parameter 400,
// anything else 502 (the console is a gateway to the NATS server).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	if status >= 500 {
		c.log.Warn("console request failed", "path", r.URL.Path, "err", err)
	}
	c.render(w, r, status, "error", page{Title: http.StatusText(status), Data: err.Error()})
}

// noticeCookie carries an action's outcome to the page its redirect shows.
// A cookie rather than a query parameter, so that a link made elsewhere
// cannot put words in the console's mouth.
const noticeCookie = "reactor_notice"

// redirect sends the browser to path with a notice, after an action (POST,
// then redirect, so that a reload does not repeat it).
func redirect(w http.ResponseWriter, r *http.Request, path, notice string) {
	if notice != "" {
		http.SetCookie(w, &http.Cookie{Name: noticeCookie, Value: url.QueryEscape(truncate(notice, 400)),
			Path: "/", MaxAge: 60, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// takeNotice returns the notice a redirect left, and clears it so that it
// is shown once.
func takeNotice(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(noticeCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: noticeCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	notice, err := url.QueryUnescape(c.Value)
	if err != nil {
		return ""
	}
	return truncate(notice, 400)
}

// pageLinks are the links of a paged list at path with the filters v: to
// the page before sequence older ("" when nothing is older), and back to
// the newest page ("" when this is it, before being 0).
func pageLinks(path string, v url.Values, older, before uint64) (olderURL, newestURL string) {
	v.Del("before")
	if before > 0 {
		newestURL = path + "?" + v.Encode()
	}
	if older > 0 {
		v.Set("before", strconv.FormatUint(older, 10))
		olderURL = path + "?" + v.Encode()
	}
	return olderURL, newestURL
}

// readStatus reads the streams and groups, or fails the request.
func (c *Console) readStatus(ctx context.Context, w http.ResponseWriter, r *http.Request) (*stream.Status, bool) {
	st, err := stream.ReadStatus(ctx, c.cfg.JS, c.cfg.Topology)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return nil, false
	}
	return st, true
}

func parseSeq(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad sequence %q: want a positive number", s)
	}
	return n, nil
}
