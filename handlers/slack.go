package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// SlackTextDefault is the text of a Slack message unless Slack.Text says
// otherwise: the alert's summary.
const SlackTextDefault = "{{.Summary}}"

// Colours of a Slack message, by severity; a resolved alert is green.
var slackColors = map[string]string{
	stream.SeverityCritical: "danger",  // red
	stream.SeverityError:    "#e8912d", // orange
	stream.SeverityWarning:  "warning", // yellow
	stream.SeverityInfo:     "#439fe0", // blue
}

const slackResolvedColor = "good" // green

// Slack posts each alert to a Slack incoming webhook
// (https://api.slack.com/messaging/webhooks) as one message: an attachment
// coloured by severity (critical red, error orange, warning yellow, info
// blue; a resolved alert green) whose title is "[FIRING] <name>" or
// "[RESOLVED] <name>", linked to the alert's page in the web console when
// ConsoleURL is set, whose text is Text, with one field per label and the
// severity and subject in the footer.
//
// Text is a template over the alert (see TemplateData). The alert's values
// it reads are escaped for Slack (&, < and > as &amp;, &lt; and &gt;), so
// that a summary cannot mention @channel or forge a link; the template's
// own text is sent as written, so <{{.ConsoleURL}}|open> is a link.
//
// A 2xx answer acks the alert; a 429 is retried after its Retry-After (at
// most an hour), a 5xx or a connection error with backoff; any other 4xx
// (invalid_payload, channel_not_found, ...) is a permanent error. The
// webhook URL is a secret: errors, logs and run records name its host only.
// The zero value is not usable: WebhookURL is required. Slack is safe for
// concurrent use.
type Slack struct {
	// WebhookURL is the incoming webhook's URL. Required.
	WebhookURL string
	// Text is the message's text, a template. Defaults to
	// SlackTextDefault: the alert's summary.
	Text string
	// Timeout bounds each request. Defaults to WebhookTimeoutDefault (10s).
	Timeout time.Duration
	// ConsoleURL is the web console's public URL: the title links to the
	// alert's page there. Defaults to none: no link.
	ConsoleURL string
	// Client sends the requests. Defaults to http.DefaultClient.
	Client *http.Client
	// Logger receives a debug record per request. Defaults to discarding.
	Logger *slog.Logger

	compiled compiled[slackTemplates]
}

type slackTemplates struct {
	url  *url.URL
	text *alertTemplate
}

// Process decodes the alert (a permanent error if it is invalid) and posts it.
func (s *Slack) Process(ctx context.Context, m *processor.Message) error {
	return runAlone(ctx, s, m)
}

func (s *Slack) kind() string { return "slack" }

func (s *Slack) validate() error {
	_, err := s.compiled.get(s.compile)
	return err
}

func (s *Slack) compile() (*slackTemplates, error) {
	u, err := checkURL(s.WebhookURL)
	if err != nil {
		return nil, fmt.Errorf("slack: webhook_url: %w", err)
	}
	if s.Timeout < 0 {
		return nil, fmt.Errorf("slack: negative timeout %s", s.Timeout)
	}
	text, err := parseSlackText(s.Text)
	if err != nil {
		return nil, err
	}
	return &slackTemplates{url: u, text: text}, nil
}

// parseSlackText parses and checks a Slack message's text.
func parseSlackText(text string) (*alertTemplate, error) {
	if text == "" {
		text = SlackTextDefault
	}
	t, err := parseTemplate("text", text)
	if err == nil {
		_, err = t.checkSample(t.sampleData(false), maxFieldLen)
	}
	if err != nil {
		return nil, fmt.Errorf("slack: text: %w", err)
	}
	return t, nil
}

// slackMessage is the body of an incoming webhook request, with a legacy
// attachment for the colour (as Alertmanager's Slack notifier sends).
type slackMessage struct {
	Attachments []slackAttachment `json:"attachments"`
}

type slackAttachment struct {
	Fallback  string       `json:"fallback"`
	Color     string       `json:"color"`
	Title     string       `json:"title"`
	TitleLink string       `json:"title_link,omitempty"`
	Text      string       `json:"text"`
	Fields    []slackField `json:"fields,omitempty"`
	Footer    string       `json:"footer"`
	Ts        int64        `json:"ts,omitempty"`
	MrkdwnIn  []string     `json:"mrkdwn_in"`
}

type slackField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

// run posts the message of a, and notes in rec the host, the status and
// the end of the answer.
func (s *Slack) run(ctx context.Context, m *processor.Message, a stream.Alert, rec *Run) error {
	t, err := s.compiled.get(s.compile)
	if err != nil {
		return processor.Permanent(err)
	}
	rec.URL = hostURL(t.url)
	where := "slack " + rec.URL
	data := newTemplateData(m, a, s.ConsoleURL)
	text, err := t.text.render(slackEscaped(data), maxFieldLen)
	if err != nil {
		return processor.Permanent(fmt.Errorf("%s: text: %w", where, err))
	}
	payload, err := json.Marshal(slackMessageOf(data, text))
	if err != nil {
		return processor.Permanent(fmt.Errorf("%s: encode message: %w", where, err))
	}
	q := post{url: t.url, body: payload, timeout: s.Timeout, client: s.Client, logger: s.Logger, what: "slack"}
	q.red = newRedactor(t.url, nil)
	q.red.add(pathSecrets(t.url)...)
	return q.do(ctx, m, rec, where)
}

// slackMessageOf is the message for the alert of d, with text.
func slackMessageOf(d TemplateData, text string) slackMessage {
	a := d.Alert
	status, color := "FIRING", slackColors[a.Severity]
	if a.Status == stream.StatusResolved {
		status, color = "RESOLVED", slackResolvedColor
	}
	if color == "" {
		color = slackColors[stream.SeverityWarning]
	}
	title := fmt.Sprintf("[%s] %s", status, slackEscape(a.Name))
	att := slackAttachment{
		Fallback:  title + ": " + slackEscape(a.Summary),
		Color:     color,
		Title:     title,
		TitleLink: d.ConsoleURL,
		Text:      text,
		Footer:    slackEscape(a.Severity + " · " + a.Subject),
		MrkdwnIn:  []string{"text"},
	}
	if !a.Timestamp.IsZero() {
		att.Ts = a.Timestamp.Unix()
	}
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		att.Fields = append(att.Fields, slackField{Title: slackEscape(k), Value: slackEscape(a.Labels[k]), Short: true})
	}
	return slackMessage{Attachments: []slackAttachment{att}}
}

// slackEscape escapes the three characters Slack reads as markup
// (https://api.slack.com/reference/surfaces/formatting#escaping).
func slackEscape(s string) string {
	return slackEscaper.Replace(s)
}

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// slackEscaped is d with its text escaped for Slack.
func slackEscaped(d TemplateData) TemplateData {
	esc := func(m map[string]string) map[string]string {
		if m == nil {
			return nil
		}
		out := make(map[string]string, len(m))
		for k, v := range m {
			out[k] = slackEscape(v)
		}
		return out
	}
	a := d.Alert
	a.ID, a.Name, a.Subject, a.Summary, a.Source = slackEscape(a.ID), slackEscape(a.Name), slackEscape(a.Subject), slackEscape(a.Summary), slackEscape(a.Source)
	a.Labels, a.Annotations = esc(a.Labels), esc(a.Annotations)
	d.Alert, d.ConsoleURL = a, slackEscape(d.ConsoleURL)
	return d
}

// checkURL parses an absolute http(s) URL; its errors never repeat it.
func checkURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("a URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("want an absolute http:// or https:// URL")
	}
	return u, nil
}

// hostURL is u's scheme and host, for a URL whose path is a secret (a
// Slack or chat webhook).
func hostURL(u *url.URL) string {
	return u.Scheme + "://" + u.Host + "/REDACTED"
}

// pathSecrets are the segments of u's path long enough to be tokens.
func pathSecrets(u *url.URL) []string {
	out := []string{u.Path, u.EscapedPath()}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 8 {
			out = append(out, seg)
		}
	}
	return out
}
