// Package ingest is reactor's HTTP door: it maps the webhooks of monitoring
// systems to alerts and stores them in the alert stream.
//
// A Handler serves, under /v1/ (POST only):
//
//   - /v1/alertmanager: Prometheus Alertmanager's webhook, payload version 4;
//   - /v1/grafana: Grafana's webhook contact point;
//   - /v1/alerts: reactor's own alert JSON (stream.Alert): one object, an
//     array of them, or NDJSON.
//
// Every alert of a request becomes one message on "alerts.<name>" with its
// id as Nats-Msg-Id. The answer is 200 only once every alert of the request
// is stored (PubAck received); 503 when storing fails, so that the sender
// retries (Alertmanager retries 5xx and network errors, never 4xx), at once
// and with a Retry-After of RetryAfterStoreFull when the store is full; 400 with
// a JSON error for a malformed body, of which nothing is stored; 413 above
// the body limit; 415 for a body that is not JSON.
//
// An alert from Alertmanager or Grafana gets an id derived from what
// identifies that notification (its fingerprint, startsAt and status), so a
// retried notification is stored once within the stream's duplicate window.
//
// Authentication is the listener's business (reactor's HTTP server wraps
// this handler with its token check).
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// Paths of the endpoints, for receivers configured once and for all.
const (
	PathAlertmanager = "/v1/alertmanager"
	PathGrafana      = "/v1/grafana"
	PathAlerts       = "/v1/alerts"
)

// Defaults of Config.
const (
	// MaxBodyBytesDefault bounds a request body: an Alertmanager group of a
	// few thousand alerts fits.
	MaxBodyBytesDefault int64 = 4 << 20
	// MaxAlertBytesDefault is nats-server's default max_payload.
	MaxAlertBytesDefault int64 = 1 << 20
	// StoreTimeoutDefault bounds the wait for the PubAcks of one request.
	StoreTimeoutDefault = 10 * time.Second
	// SubjectLabelDefault is the label naming an alert from monitoring.
	SubjectLabelDefault = "alertname"
	// UnnamedDefault names an alert from monitoring without that label.
	UnnamedDefault = "unnamed"
)

// Config tunes a Handler. The zero value is valid.
type Config struct {
	// MaxBodyBytes bounds a request body; a larger one is answered 413.
	// Defaults to MaxBodyBytesDefault.
	MaxBodyBytes int64
	// MaxAlertBytes bounds one stored alert's JSON: the server's max
	// payload. Defaults to MaxAlertBytesDefault.
	MaxAlertBytes int64
	// StoreTimeout bounds the wait for every PubAck of a request; past it
	// the request is answered 503. Defaults to StoreTimeoutDefault.
	StoreTimeout time.Duration
	// SubjectLabel is the label of an Alertmanager or Grafana alert whose
	// value names the alert and its subject, "alerts.<value>" (made a valid
	// NATS token: characters other than letters, digits, '-' and '_' become
	// '_'). Defaults to SubjectLabelDefault.
	SubjectLabel string
	// Connected reports whether the NATS connection is up; while it is not,
	// requests are answered 503 at once rather than after StoreTimeout.
	// Defaults to nil: always try.
	Connected func() bool
	// Metrics counts requests and alerts. Defaults to nil: not counted.
	Metrics *Metrics
	// Logger receives one line per rejected request. Defaults to
	// discarding them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = MaxBodyBytesDefault
	}
	if c.MaxAlertBytes <= 0 {
		c.MaxAlertBytes = MaxAlertBytesDefault
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = StoreTimeoutDefault
	}
	if c.SubjectLabel == "" {
		c.SubjectLabel = SubjectLabelDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Handler is the http.Handler of the /v1/ endpoints.
type Handler struct {
	pub *stream.Publisher
	cfg Config
	mux *http.ServeMux
}

// New returns a Handler storing alerts with pub.
func New(pub *stream.Publisher, cfg Config) *Handler {
	h := &Handler{pub: pub, cfg: cfg.withDefaults(), mux: http.NewServeMux()}
	h.mux.Handle("POST "+PathAlertmanager, h.endpoint(PathAlertmanager, h.alertmanager))
	h.mux.Handle("POST "+PathGrafana, h.endpoint(PathGrafana, h.grafana))
	h.mux.Handle("POST "+PathAlerts, h.endpoint(PathAlerts, parseAlerts))
	h.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		code, msg := http.StatusNotFound, fmt.Sprintf("no endpoint %s: POST to %s, %s or %s", r.URL.Path, PathAlertmanager, PathGrafana, PathAlerts)
		for _, p := range []string{PathAlertmanager, PathGrafana, PathAlerts} {
			if r.URL.Path == p {
				w.Header().Set("Allow", http.MethodPost)
				code, msg = http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: only POST", r.Method, p)
			}
		}
		h.reject(w, r, &requestError{code: code, msg: msg})
	})
	return h
}

// ServeHTTP serves the /v1/ endpoints.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// parseFunc maps a request body to the alerts to store.
type parseFunc func(body []byte) ([]stream.Alert, error)

// requestError is a request answered with code and msg, nothing stored.
type requestError struct {
	code int
	msg  string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// Response is the body of a 200 answer: every alert of the request is in
// the stream.
type Response struct {
	// Stored counts the alerts this request stored, Duplicates those that
	// were already there (same id within the duplicate window): the two add
	// up to the alerts of the request.
	Stored     int           `json:"stored"`
	Duplicates int           `json:"duplicates"`
	Alerts     []StoredAlert `json:"alerts"`
}

// StoredAlert is one stored alert of a Response.
type StoredAlert struct {
	ID        string `json:"id"`
	Subject   string `json:"subject"`
	Status    string `json:"status,omitempty"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// ErrorResponse is the body of every answer other than 200.
type ErrorResponse struct {
	Error string `json:"error"`
}

func (h *Handler) endpoint(path string, parse parseFunc) http.Handler {
	name := Endpoint(path)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := h.serve(r, parse)
		if err != nil {
			h.reject(w, r, err)
			return
		}
		h.cfg.Metrics.stored(name, resp)
		h.cfg.Metrics.Request(name, http.StatusOK)
		writeJSON(w, http.StatusOK, resp)
	})
}

func (h *Handler) serve(r *http.Request, parse parseFunc) (Response, error) {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return Response{}, err
	}
	body, err := readBody(r, h.cfg.MaxBodyBytes)
	if err != nil {
		return Response{}, err
	}
	alerts, err := parse(body)
	if err != nil {
		return Response{}, err
	}
	if len(alerts) == 0 {
		return Response{}, badRequest("no alerts in the request")
	}
	msgs := make([]*nats.Msg, len(alerts))
	for i, a := range alerts {
		if err := a.Validate(); err != nil {
			return Response{}, badRequest("alert %d: %v", i+1, err)
		}
		msg, err := a.Msg(h.cfg.MaxAlertBytes)
		if err != nil {
			return Response{}, &requestError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("alert %d: %v", i+1, err)}
		}
		msgs[i] = msg
	}
	if h.cfg.Connected != nil && !h.cfg.Connected() {
		return Response{}, &storeError{err: ErrNotConnected}
	}
	return h.store(r.Context(), alerts, msgs)
}

// ErrNotConnected is the reason of a 503 while the NATS connection is down.
var ErrNotConnected = errors.New("ingest: not connected to NATS (reconnecting)")

// store publishes msgs and waits for every PubAck.
func (h *Handler) store(ctx context.Context, alerts []stream.Alert, msgs []*nats.Msg) (Response, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, h.cfg.StoreTimeout,
		fmt.Errorf("no acknowledgement from the stream within %s", h.cfg.StoreTimeout))
	defer cancel()
	resp := Response{Alerts: make([]StoredAlert, len(msgs))}
	var first error
	h.pub.PublishBatch(ctx, msgs, func(res stream.Result) {
		if res.Err != nil {
			if first == nil {
				first = res.Err
			}
			return
		}
		a := alerts[res.Index]
		resp.Alerts[res.Index] = StoredAlert{ID: a.ID, Subject: a.Subject, Status: a.Status, Seq: res.Ack.Sequence, Duplicate: res.Ack.Duplicate}
		if res.Ack.Duplicate {
			resp.Duplicates++
		} else {
			resp.Stored++
		}
	})
	if first != nil {
		return Response{}, &storeError{err: first}
	}
	return resp, nil
}

// storeError is a failure to store: 503, the sender should retry.
type storeError struct{ err error }

func (e *storeError) Error() string {
	err := e.err
	var full *stream.StoreFullError
	switch {
	case errors.As(err, &full):
		return "store alerts: " + full.Error() + ": nothing of this request was stored; retry once the store has room (older alerts aged out or purged, a higher limit, more disk)"
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return fmt.Sprintf("store alerts: no stream stores them yet (is `reactor run` started?): %v", err)
	}
	return "store alerts: " + err.Error()
}

// retryAfter is the Retry-After of a 503 for err, in seconds: a full store
// frees room slowly (alerts age out, an operator purges), so its senders
// are asked to wait longer.
func (e *storeError) retryAfter() string {
	if errors.Is(e.err, stream.ErrStoreFull) {
		return strconv.Itoa(int(RetryAfterStoreFull / time.Second))
	}
	return strconv.Itoa(int(RetryAfterUnavailable / time.Second))
}

// The Retry-After of a 503 answer.
const (
	// RetryAfterUnavailable follows a failure to reach the stream.
	RetryAfterUnavailable = 5 * time.Second
	// RetryAfterStoreFull follows a refusal by a full store.
	RetryAfterStoreFull = 60 * time.Second
)

func (e *storeError) Unwrap() error { return e.err }

// reject answers err and logs one line saying why (never a credential: the
// request's headers are not logged).
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, err error) {
	endpoint := Endpoint(r.URL.Path)
	code := http.StatusInternalServerError
	var re *requestError
	var se *storeError
	switch {
	case errors.As(err, &re):
		code = re.code
	case errors.As(err, &se):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", se.retryAfter())
	}
	level := slog.LevelWarn
	if code >= 500 {
		level = slog.LevelError
	}
	h.cfg.Logger.Log(r.Context(), level, "ingest request rejected",
		"endpoint", endpoint, "path", r.URL.Path, "code", code, "remote", r.RemoteAddr, "err", err)
	h.cfg.Metrics.Request(endpoint, code)
	writeJSON(w, code, ErrorResponse{Error: err.Error()})
}

// checkContentType accepts JSON (and NDJSON for /v1/alerts, which reads both
// the same way).
func checkContentType(ct string) error {
	if ct == "" {
		return &requestError{code: http.StatusUnsupportedMediaType,
			msg: "no Content-Type: send the body as application/json (curl: -H 'Content-Type: application/json')"}
	}
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err != nil:
		return &requestError{code: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("bad Content-Type %q: %v", ct, err)}
	case mt == "application/json", mt == "application/x-ndjson":
		return nil
	}
	return &requestError{code: http.StatusUnsupportedMediaType,
		msg: fmt.Sprintf("Content-Type %q: want application/json (or application/x-ndjson)", mt)}
}

// readBody reads the request body, up to limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	tooLarge := &requestError{code: http.StatusRequestEntityTooLarge,
		msg: fmt.Sprintf("body larger than %d bytes: send fewer alerts per request", limit)}
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge
	case err != nil:
		return nil, badRequest("read body: %v", err)
	}
	return body, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away: nothing more to say to it
}
