package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// PagerDutyURLDefault is the Events API v2 endpoint unless PagerDuty.URL
// says otherwise (https://events.eu.pagerduty.com/v2/enqueue for an EU
// account).
const PagerDutyURLDefault = "https://events.pagerduty.com/v2/enqueue"

// PagerDutySourceDefault is an event's payload.source unless PagerDuty.Source
// says otherwise: the alert's host label, else its instance label, else its
// source, else its subject.
const PagerDutySourceDefault = `{{with .Labels.host}}{{.}}{{else}}{{with .Labels.instance}}{{.}}{{else}}{{with .Source}}{{.}}{{else}}{{.Subject}}{{end}}{{end}}{{end}}`

// Bounds of an event (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/).
const (
	pagerDutyMaxSummary  = 1024   // characters
	pagerDutyMaxDedupKey = 255    // characters
	pagerDutyMaxEvent    = 512000 // bytes
)

// Event actions of the Events API v2.
const (
	pagerDutyTrigger = "trigger"
	pagerDutyResolve = "resolve"
)

// pagerDutySeverities are the severities PagerDuty accepts: reactor's four.
var pagerDutySeverities = []string{stream.SeverityCritical, stream.SeverityError, stream.SeverityWarning, stream.SeverityInfo}

// PagerDuty sends each alert to PagerDuty's Events API v2: a firing alert
// (or one without a status) as a trigger event, a resolved one as a resolve
// event with the same dedup_key, which resolves the incident the trigger
// opened. The trigger's payload has the alert's summary (cut to 1024
// characters), source (see Source), severity (see Severity), timestamp,
// class (its name) and custom_details (subject, id, labels, annotations),
// and links to the alert's page in the web console when ConsoleURL is set.
//
// The dedup_key is DedupKey rendered, or by default a digest of the group,
// the rule entry, the alert's name and its labels: the firing and the
// resolved notification of one alert (Alertmanager's, for instance) share
// it, and so do repeats of a firing alert, which PagerDuty adds to the open
// incident. A resolved alert must therefore be taken by the same entry as
// its firing one; otherwise give both entries the same DedupKey.
//
// A 2xx answer (202) acks the alert. A 400 is a permanent error with
// PagerDuty's reason; a 429 is retried after its Retry-After (at most an
// hour) or with backoff, a 5xx or a connection error with backoff; any
// other 4xx is permanent. The routing key is a secret: it never appears in
// errors, logs or run records. The zero value is not usable: RoutingKey is
// required. PagerDuty is safe for concurrent use.
type PagerDuty struct {
	// RoutingKey is the integration key of an Events API v2 integration.
	// Required.
	RoutingKey string
	// URL is the Events API endpoint. Defaults to PagerDutyURLDefault.
	URL string
	// DedupKey is the event's dedup_key, a template; longer than 255
	// characters, its SHA-256 in hex is sent instead. Defaults to a digest
	// of the group, the entry, the alert's name and its labels.
	DedupKey string
	// Severity maps reactor's severities to PagerDuty's (critical, error,
	// warning, info), e.g. {"warning": "error"}. Defaults to the same
	// name for each.
	Severity map[string]string
	// Source is the payload's source, a template. Defaults to
	// PagerDutySourceDefault.
	Source string
	// Timeout bounds each request. Defaults to WebhookTimeoutDefault (10s).
	Timeout time.Duration
	// ConsoleURL is the web console's public URL: the event links to the
	// alert's page there. Defaults to none: no link.
	ConsoleURL string
	// Client sends the requests. Defaults to http.DefaultClient.
	Client *http.Client
	// Logger receives a debug record per request. Defaults to discarding.
	Logger *slog.Logger

	entry    string                 // the rule entry, for the default dedup_key
	group    atomic.Pointer[string] // set by Rules.Start; nil: processor.GroupDefault
	compiled compiled[pagerDutyTemplates]
}

type pagerDutyTemplates struct {
	url      string
	dedupKey *alertTemplate // nil: the default
	source   *alertTemplate
}

// Process decodes the alert (a permanent error if it is invalid) and sends
// its event.
func (p *PagerDuty) Process(ctx context.Context, m *processor.Message) error {
	return runAlone(ctx, p, m)
}

func (p *PagerDuty) kind() string { return "pagerduty" }

// bindGroup names the group whose processes send the events, for the
// default dedup_key.
func (p *PagerDuty) bindGroup(name string) { p.group.Store(&name) }

func (p *PagerDuty) validate() error {
	_, err := p.compiled.get(p.compile)
	return err
}

func (p *PagerDuty) compile() (*pagerDutyTemplates, error) {
	if p.RoutingKey == "" {
		return nil, errors.New("pagerduty: routing_key is required")
	}
	if p.Timeout < 0 {
		return nil, fmt.Errorf("pagerduty: negative timeout %s", p.Timeout)
	}
	t := &pagerDutyTemplates{url: p.URL}
	if t.url == "" {
		t.url = PagerDutyURLDefault
	}
	if _, err := checkURL(t.url); err != nil {
		return nil, fmt.Errorf("pagerduty: url: %w", err)
	}
	for _, k := range slices.Sorted(maps.Keys(p.Severity)) {
		if _, ok := severityLevels[k]; !ok {
			return nil, fmt.Errorf("pagerduty: severity: %q is not a severity of reactor's: want info, warning, error or critical", k)
		}
		if !slices.Contains(pagerDutySeverities, p.Severity[k]) {
			return nil, fmt.Errorf("pagerduty: severity.%s: %q is not a severity of PagerDuty's: want critical, error, warning or info", k, p.Severity[k])
		}
	}
	var err error
	if p.DedupKey != "" {
		if t.dedupKey, err = parsePagerDutyField("dedup_key", p.DedupKey); err != nil {
			return nil, err
		}
	}
	source := p.Source
	if source == "" {
		source = PagerDutySourceDefault
	}
	if t.source, err = parsePagerDutyField("source", source); err != nil {
		return nil, err
	}
	return t, nil
}

func parsePagerDutyField(what, text string) (*alertTemplate, error) {
	t, err := parseTemplate(what, text)
	if err == nil {
		_, err = t.checkSample(t.sampleData(false), maxFieldLen)
	}
	if err != nil {
		return nil, fmt.Errorf("pagerduty: %s: %w", what, err)
	}
	return t, nil
}

// pagerDutyEvent is an Events API v2 request.
type pagerDutyEvent struct {
	RoutingKey  string            `json:"routing_key"`
	EventAction string            `json:"event_action"`
	DedupKey    string            `json:"dedup_key"`
	Payload     *pagerDutyPayload `json:"payload,omitempty"`
	Client      string            `json:"client,omitempty"`
	ClientURL   string            `json:"client_url,omitempty"`
	Links       []pagerDutyLink   `json:"links,omitempty"`
}

type pagerDutyPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

type pagerDutyLink struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

// run sends the event of a, and notes in rec the URL, the status and the
// end of the answer.
func (p *PagerDuty) run(ctx context.Context, m *processor.Message, a stream.Alert, rec *Run) error {
	t, err := p.compiled.get(p.compile)
	if err != nil {
		return processor.Permanent(err)
	}
	u, _ := checkURL(t.url)
	rec.URL = redactURL(u)
	where := "pagerduty " + rec.URL
	data := newTemplateData(m, a, p.ConsoleURL)
	ev, err := p.event(t, data)
	if err != nil {
		return processor.Permanent(fmt.Errorf("%s: %w", where, err))
	}
	payload, err := encodePagerDutyEvent(ev)
	if err != nil {
		return processor.Permanent(fmt.Errorf("%s: encode event: %w", where, err))
	}
	q := post{url: u, body: payload, timeout: p.Timeout, client: p.Client, logger: p.Logger, what: "pagerduty"}
	q.red = newRedactor(u, nil)
	q.red.add(p.RoutingKey)
	return q.do(ctx, m, rec, where)
}

// event is the event of the alert of d.
func (p *PagerDuty) event(t *pagerDutyTemplates, d TemplateData) (pagerDutyEvent, error) {
	a := d.Alert
	key, err := p.dedupKey(t, d)
	if err != nil {
		return pagerDutyEvent{}, err
	}
	ev := pagerDutyEvent{RoutingKey: p.RoutingKey, DedupKey: key}
	if a.Status == stream.StatusResolved {
		ev.EventAction = pagerDutyResolve
		return ev, nil
	}
	source, err := t.source.render(d, maxFieldLen)
	if err != nil {
		return ev, fmt.Errorf("source: %w", err)
	}
	if source == "" {
		source = a.Subject // PagerDuty requires one
	}
	severity := p.Severity[a.Severity]
	if severity == "" {
		severity = a.Severity
	}
	summary := a.Summary
	if summary == "" {
		summary = a.Name
	}
	summary, _ = trunc(pagerDutyMaxSummary, summary)
	details := map[string]any{"subject": a.Subject, "name": a.Name}
	if a.ID != "" {
		details["alert_id"] = a.ID
	}
	if len(a.Labels) > 0 {
		details["labels"] = a.Labels
	}
	if len(a.Annotations) > 0 {
		details["annotations"] = a.Annotations
	}
	ev.EventAction = pagerDutyTrigger
	ev.Client = "reactor"
	ev.Payload = &pagerDutyPayload{
		Summary: summary, Source: source, Severity: severity, Class: a.Name, CustomDetails: details,
	}
	if !a.Timestamp.IsZero() {
		ev.Payload.Timestamp = a.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	if d.ConsoleURL != "" {
		ev.ClientURL = d.ConsoleURL
		ev.Links = []pagerDutyLink{{Href: d.ConsoleURL, Text: "reactor: " + a.Name}}
	}
	return ev, nil
}

// dedupKey is DedupKey rendered, or the default: a digest of the group,
// the entry, the name and the labels.
func (p *PagerDuty) dedupKey(t *pagerDutyTemplates, d TemplateData) (string, error) {
	if t.dedupKey != nil {
		key, err := t.dedupKey.render(d, maxFieldLen)
		if err != nil {
			return "", fmt.Errorf("dedup_key: %w", err)
		}
		if key == "" {
			return "", errors.New("dedup_key: renders empty text for this alert")
		}
		if len([]rune(key)) > pagerDutyMaxDedupKey {
			sum := sha256.Sum256([]byte(key))
			key = hex.EncodeToString(sum[:])
		}
		return key, nil
	}
	group := processor.GroupDefault
	if g := p.group.Load(); g != nil {
		group = *g
	}
	h := sha256.New()
	for _, s := range []string{group, p.entry, d.Name} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	for _, k := range slices.Sorted(maps.Keys(d.Labels)) {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(d.Labels[k]))
		h.Write([]byte{0})
	}
	return "reactor-" + hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// encodePagerDutyEvent encodes ev; an event over PagerDuty's size limit has
// its custom details replaced by a note, as Alertmanager does.
func encodePagerDutyEvent(ev pagerDutyEvent) ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil || len(b) <= pagerDutyMaxEvent || ev.Payload == nil {
		return b, err
	}
	ev.Payload.CustomDetails = map[string]any{"error": fmt.Sprintf("custom details removed: the event exceeded PagerDuty's %d bytes", pagerDutyMaxEvent)}
	return json.Marshal(ev)
}
