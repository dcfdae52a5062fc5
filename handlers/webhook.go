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
	"maps"
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
// URL, each value of Headers and Body are Go text/templates over the alert
// (see TemplateData). Body replaces reactor's alert JSON with what the
// receiver expects: {"text": {{json .Summary}}}. Write every value of a JSON
// body with json, which quotes and escapes it: a summary holding a quote
// or a newline then stays one JSON string. Unless Headers sets a
// Content-Type that is not JSON, the rendered body must be valid JSON; it
// is checked when the config loads, on a sample alert whose text holds
// quotes, backslashes and a newline. A header value's control characters
// (a newline from a label) render as spaces. A template that fails on an
// alert, a body that is not JSON and a URL that is not absolute are
// permanent errors.
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
	// URL is the absolute http or https URL to POST to, a template.
	// Required. User information in it is sent as basic authentication.
	URL string
	// Headers are added to each request; each value is a template.
	Headers map[string]string
	// Body is the request's body, a template. Defaults to the alert as
	// JSON.
	Body string
	// Timeout bounds each request, from connecting to reading the answer.
	// Defaults to WebhookTimeoutDefault (10s).
	Timeout time.Duration
	// ConsoleURL is the web console's public URL, for the templates'
	// .ConsoleURL. Defaults to none.
	ConsoleURL string
	// Client sends the requests. Defaults to http.DefaultClient.
	Client *http.Client
	// Logger receives a debug record per request. Defaults to discarding.
	Logger *slog.Logger

	secrets  []string // besides header values: what ${VAR} put in URL
	compiled compiled[webhookTemplates]
}

// webhookTemplates is a Webhook's URL, headers and body, parsed.
type webhookTemplates struct {
	url      *alertTemplate
	headers  []namedTemplate // sorted by name
	body     *alertTemplate  // nil: the alert as JSON
	bodyJSON bool            // the body must be JSON
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
	_, err := w.compiled.get(w.compile)
	return err
}

// compile checks w and parses its templates, rendering each on a sample
// alert. Its errors never repeat the URL or a header value.
func (w *Webhook) compile() (*webhookTemplates, error) {
	if w.URL == "" {
		return nil, errors.New("webhook: URL is required")
	}
	if w.Timeout < 0 {
		return nil, fmt.Errorf("webhook: negative timeout %s", w.Timeout)
	}
	t := &webhookTemplates{}
	var err error
	if t.url, err = parseURLTemplate(w.URL); err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(w.Headers)) {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return nil, fmt.Errorf("webhook: invalid header name %q", k)
		}
		x, err := parseHeaderTemplate(k, w.Headers[k])
		if err != nil {
			return nil, err
		}
		t.headers = append(t.headers, namedTemplate{name: k, t: x})
	}
	if w.Body != "" {
		t.bodyJSON = true
		for _, h := range t.headers {
			if strings.EqualFold(h.name, "Content-Type") && !(h.t.static() && jsonContentType(h.t.text)) {
				t.bodyJSON = false
			}
		}
		if t.body, err = parseBodyTemplate(w.Body, t.bodyJSON); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// parseURLTemplate parses a webhook's URL and checks that it renders an
// absolute http(s) URL on a sample alert.
func parseURLTemplate(raw string) (*alertTemplate, error) {
	t, err := parseTemplate("url", raw)
	if err != nil {
		return nil, fmt.Errorf("webhook: url: %w", err)
	}
	u, err := t.checkSample(t.sampleData(false), maxFieldLen)
	if err != nil {
		return nil, fmt.Errorf("webhook: url: %w", err)
	}
	if _, err := parseURL(u); err != nil {
		if !t.static() {
			return nil, fmt.Errorf("%w (rendered on a sample alert)", err)
		}
		return nil, err
	}
	return t, nil
}

// parseHeaderTemplate parses the value of header k; errors never repeat it.
func parseHeaderTemplate(k, v string) (*alertTemplate, error) {
	t, err := parseTemplate("headers."+k, v)
	if err == nil {
		_, err = t.checkSample(t.sampleData(false), maxFieldLen)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: headers.%s: %w", k, err)
	}
	return t, nil
}

// parseBodyTemplate parses a webhook's body and, if it must be JSON, checks
// that it renders valid JSON on the sample alerts.
func parseBodyTemplate(body string, isJSON bool) (*alertTemplate, error) {
	t, err := parseTemplate("body", body)
	if err == nil && isJSON {
		err = t.checkJSONSample()
	} else if err == nil {
		_, err = t.checkSample(t.sampleData(false), maxBodyLen)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: body: %w", err)
	}
	return t, nil
}

// jsonContentType reports whether a Content-Type is JSON:
// application/json, or a type with a +json suffix.
func jsonContentType(v string) bool {
	mt, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(v)), ";")
	mt = strings.TrimSpace(mt)
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// headerValue makes a rendered header value sendable: control characters
// (a newline from an alert's label) become spaces.
func headerValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// run posts a, and notes in rec the URL (redacted), the status and the end
// of the answer's body (redacted).
func (w *Webhook) run(ctx context.Context, m *processor.Message, a stream.Alert, rec *Run) error {
	t, err := w.compiled.get(w.compile)
	if err != nil {
		return processor.Permanent(err)
	}
	data := newTemplateData(m, a, w.ConsoleURL)
	raw, err := t.url.render(data, maxFieldLen)
	if err != nil {
		return processor.Permanent(fmt.Errorf("webhook: url: %w", err))
	}
	u, err := parseURL(raw)
	if err != nil {
		return processor.Permanent(err)
	}
	headers := make(map[string]string, len(t.headers))
	for _, h := range t.headers {
		v, err := h.t.render(data, maxFieldLen)
		if err != nil {
			return processor.Permanent(fmt.Errorf("webhook: headers.%s: %w", h.name, err))
		}
		headers[h.name] = headerValue(v)
	}
	q := post{url: u, headers: headers, timeout: w.Timeout, client: w.Client, logger: w.Logger, what: "webhook"}
	q.red = newRedactor(u, headers)
	q.red.add(w.secrets...)
	rec.URL = q.red.redact(redactURL(u))
	where := "webhook " + rec.URL
	switch {
	case t.body == nil:
		q.body, err = json.Marshal(a)
		if err != nil {
			return processor.Permanent(fmt.Errorf("%s: encode alert: %w", where, err))
		}
	case t.bodyJSON:
		q.body, err = t.body.renderJSON(data, maxBodyLen)
	default:
		var s string
		s, err = t.body.render(data, maxBodyLen)
		q.body = []byte(s)
	}
	if err != nil {
		return processor.Permanent(q.red.errorf("%s: body: %w", where, err))
	}
	if a.ID != "" {
		q.idempotencyKey = a.ID
	}
	return q.do(ctx, m, rec, where)
}

// post is one POST of a webhook, Slack or PagerDuty action.
type post struct {
	url            *url.URL
	headers        map[string]string // over the defaults; "Host" sets the Host header
	body           []byte
	idempotencyKey string
	timeout        time.Duration // 0: WebhookTimeoutDefault
	client         *http.Client  // nil: http.DefaultClient
	logger         *slog.Logger
	red            redactor
	what           string // webhook, slack, pagerduty: for the log
}

// do sends q, notes in rec the status and the end of the answer's body
// (redacted), and maps the answer to a handler result. where starts errors.
func (q post) do(ctx context.Context, m *processor.Message, rec *Run, where string) error {
	timeout := q.timeout
	if timeout == 0 {
		timeout = WebhookTimeoutDefault
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout,
		fmt.Errorf("timeout %s: %w", timeout, context.DeadlineExceeded))
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.url.String(), bytes.NewReader(q.body))
	if err != nil {
		return processor.Permanent(q.red.errorf("%s: build request: %w", where, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "reactor")
	if q.idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", q.idempotencyKey)
	}
	for k, v := range q.headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	client := q.client
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
			return q.red.errorf("%s: %w", where, context.Cause(ctx))
		}
		return q.red.errorf("%s: %w", where, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // drained, so the connection is reused
	rec.HTTPStatus = resp.StatusCode
	kept := newTailBuffer(rec.outputLimit)
	_, _ = kept.Write([]byte(q.red.redact(string(body))))
	rec.Body = kept.output()
	if l := q.logger; l != nil && l.Enabled(ctx, slog.LevelDebug) {
		l.LogAttrs(ctx, slog.LevelDebug, q.what+" done",
			slog.String("url", rec.URL), slog.String("subject", m.Subject()),
			slog.Uint64("seq", m.Sequence()), slog.Int("status", resp.StatusCode),
			slog.Duration("duration", time.Since(start)))
	}
	return classifyStatus(resp, body, where, q.red)
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

// urlSecrets are the parts of values put in a URL from the environment
// that are secrets: the path of a whole URL (a chat webhook's token), or
// the value itself. A host is not a secret.
func urlSecrets(values []string) []string {
	var out []string
	for _, v := range values {
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			out = append(out, v)
			continue
		}
		out = append(out, strings.TrimPrefix(u.Path, "/"))
		for _, seg := range strings.Split(u.Path, "/") {
			if len(seg) >= 8 {
				out = append(out, seg)
			}
		}
	}
	return out
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

// add adds secrets to r.
func (r *redactor) add(secrets ...string) {
	for _, v := range secrets {
		if len(v) >= minSecret {
			r.secrets = append(r.secrets, v)
		}
	}
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
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
