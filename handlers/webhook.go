package handlers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// WebhookTimeoutDefault bounds one webhook request unless Webhook.Timeout
// says otherwise.
const WebhookTimeoutDefault = 10 * time.Second

// maxRetryAfter caps the delay a server can ask for with Retry-After: a
// misconfigured server must not park alerts for days.
const maxRetryAfter = time.Hour

// bodySnippet is how much of an error response's body the error carries.
const bodySnippet = 256

// Webhook POSTs each alert as JSON to a URL, with Content-Type
// application/json, User-Agent reactor and, when the alert has an ID,
// Idempotency-Key: <id> (delivery is at least once: receivers can use it to
// drop duplicates). Headers adds to or overrides these.
//
// A 2xx answer acks the alert. 5xx, 408, 429, timeouts and connection errors
// are plain errors, retried with backoff; a 429 or 503 with a Retry-After
// header is retried after that delay (at most an hour). Any other 4xx is a
// permanent error: the request is wrong and retrying will not fix it.
//
// Header values and the URL's user information and query values may be
// secrets: they never appear in errors or logs (the URL's scheme, host and
// path do). The zero value is not usable: URL is required. Webhook is safe
// for concurrent use.
type Webhook struct {
	// URL is the absolute http or https URL to POST to. Required. User
	// information in it is sent as basic authentication.
	URL string
	// Headers are added to each request.
	Headers map[string]string
	// Timeout bounds each request, from connecting to reading the answer.
	// Defaults to WebhookTimeoutDefault (10s).
	Timeout time.Duration
	// Client sends the requests. Defaults to http.DefaultClient.
	Client *http.Client
	// Logger receives a debug record per request. Defaults to discarding.
	Logger *slog.Logger
}

// Process decodes the alert (a permanent error if it is invalid) and posts it.
func (w *Webhook) Process(ctx context.Context, m *processor.Message) error {
	a, err := Decode(m)
	if err != nil {
		return err
	}
	return w.run(ctx, m, a, &Run{})
}

func (w *Webhook) kind() string { return "webhook" }

// parseURL checks that raw is an absolute http(s) URL. Its errors do not
// repeat the URL, which may hold a secret.
func parseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("webhook: URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhook: URL must be an absolute http:// or https:// URL")
	}
	return u, nil
}

func (w *Webhook) validate() error {
	if _, err := parseURL(w.URL); err != nil {
		return err
	}
	if w.Timeout < 0 {
		return fmt.Errorf("webhook: negative timeout %s", w.Timeout)
	}
	for k := range w.Headers {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return fmt.Errorf("webhook: invalid header name %q", k)
		}
	}
	return nil
}

// run posts a, and notes in rec the URL (redacted), the status and the end
// of the answer's body (redacted).
func (w *Webhook) run(ctx context.Context, m *processor.Message, a stream.Alert, rec *Run) error {
	if err := w.validate(); err != nil {
		return processor.Permanent(err)
	}
	u, _ := parseURL(w.URL)
	r := newRedactor(u, w.Headers)
	rec.URL = redactURL(u)
	where := "webhook " + rec.URL
	payload, err := json.Marshal(a)
	if err != nil {
		return processor.Permanent(fmt.Errorf("%s: encode alert: %w", where, err))
	}
	timeout := w.Timeout
	if timeout == 0 {
		timeout = WebhookTimeoutDefault
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout,
		fmt.Errorf("timeout %s: %w", timeout, context.DeadlineExceeded))
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(payload))
	if err != nil {
		return processor.Permanent(r.errorf("%s: build request: %w", where, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "reactor")
	if a.ID != "" {
		req.Header.Set("Idempotency-Key", a.ID)
	}
	for k, v := range w.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, user name included: keep what is inside.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil {
			return r.errorf("%s: %w", where, context.Cause(ctx))
		}
		return r.errorf("%s: %w", where, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // drained, so the connection is reused
	rec.HTTPStatus = resp.StatusCode
	kept := newTailBuffer(rec.outputLimit)
	_, _ = kept.Write([]byte(r.redact(string(body))))
	rec.Body = kept.output()
	if l := w.Logger; l != nil && l.Enabled(ctx, slog.LevelDebug) {
		l.LogAttrs(ctx, slog.LevelDebug, "webhook done",
			slog.String("url", redactURL(u)), slog.String("subject", m.Subject()),
			slog.Uint64("seq", m.Sequence()), slog.Int("status", resp.StatusCode),
			slog.Duration("duration", time.Since(start)))
	}
	return classifyStatus(resp, body, where, r)
}

// classifyStatus maps a webhook's answer to a handler result.
func classifyStatus(resp *http.Response, body []byte, where string, r redactor) error {
	code := resp.StatusCode
	if code >= 200 && code <= 299 {
		return nil
	}
	msg := fmt.Sprintf("%s: status %s", where, resp.Status)
	// Redact the whole body before cutting it, so no secret is cut in half.
	if s := strings.TrimSpace(r.redact(string(body))); s != "" {
		s = strings.ToValidUTF8(s[:min(len(s), bodySnippet)], "")
		msg += "; body: " + strconv.Quote(s)
	}
	err := errors.New(r.redact(msg))
	switch {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		if after, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return processor.Retry(after, err)
		}
		return err
	case code == http.StatusRequestTimeout || code >= 500:
		return err
	case code >= 400:
		return processor.Permanent(err)
	}
	return err // 1xx, 3xx: unexpected; retry, then dead-letter
}

// retryAfter parses a Retry-After value: seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	if d <= 0 {
		return 0, false
	}
	return min(d, maxRetryAfter), true
}

// redactURL returns u without user information or fragment and with query
// values replaced by REDACTED.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.Fragment, c.RawFragment = "", ""
	if c.RawQuery != "" {
		q, _ := url.ParseQuery(c.RawQuery)
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		c.RawQuery = q.Encode()
	}
	return c.String()
}

// redactor replaces secrets (header values, URL user information and query
// values) in error text.
type redactor struct{ secrets []string }

// minSecret is the shortest value redacted: shorter ones are not secrets
// worth the name and would mangle ordinary text.
const minSecret = 3

func newRedactor(u *url.URL, headers map[string]string) redactor {
	var s []string
	for _, v := range headers {
		// The whole value, and the credentials of "<scheme> <credentials>"
		// (e.g. "Bearer ${TOKEN}"), which a server may echo on their own.
		s = append(s, v)
		if f := strings.Fields(v); len(f) > 1 {
			s = append(s, f[1:]...)
		}
	}
	if u.User != nil {
		s = append(s, u.User.String(), u.User.Username())
		if p, ok := u.User.Password(); ok {
			// The Authorization header net/http makes of them, too.
			s = append(s, p, base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+p)))
		}
	}
	for _, vs := range u.Query() {
		s = append(s, vs...)
	}
	s = slices.DeleteFunc(s, func(v string) bool { return len(v) < minSecret })
	// Longest first, so a secret containing another is replaced whole.
	slices.SortFunc(s, func(a, b string) int { return len(b) - len(a) })
	return redactor{secrets: s}
}

func (r redactor) redact(s string) string {
	for _, v := range r.secrets {
		s = strings.ReplaceAll(s, v, "REDACTED")
	}
	return s
}

// errorf is fmt.Errorf with the secrets redacted from the message; the
// wrapped error stays reachable with errors.Is and errors.As.
func (r redactor) errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &redactedError{msg: r.redact(err.Error()), err: errors.Unwrap(err)}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
