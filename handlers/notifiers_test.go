package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
)

// slackRequest is an incoming webhook body as Slack documents it, decoded
// strictly: a field reactor misspells fails the test.
type slackRequest struct {
	Text        string `json:"text"`
	Attachments []struct {
		Fallback  string `json:"fallback"`
		Color     string `json:"color"`
		Title     string `json:"title"`
		TitleLink string `json:"title_link"`
		Text      string `json:"text"`
		Fields    []struct {
			Title string `json:"title"`
			Value string `json:"value"`
			Short bool   `json:"short"`
		} `json:"fields"`
		Footer   string   `json:"footer"`
		Ts       int64    `json:"ts"`
		MrkdwnIn []string `json:"mrkdwn_in"`
	} `json:"attachments"`
}

func decodeStrictly(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
}

func TestSlackMessage(t *testing.T) {
	t.Parallel()
	srv, got := hookServer(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	s := &Slack{WebhookURL: srv.URL + "/services/T0001/B0001/XXXXXXXXXXXXXXXX", ConsoleURL: "https://reactor.example.com", Client: srv.Client()}
	firing := `{"severity":"critical","summary":"disk 95% on <!channel> & db-3","labels":{"host":"db-3","team":"db"}}`
	rec := &Run{}
	if err := s.run(context.Background(), message("alerts.disk_full", firing), mustDecode(t, "alerts.disk_full", []byte(firing)), rec); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.header.Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", r.header.Get("Content-Type"))
	}
	var m slackRequest
	decodeStrictly(t, r.body, &m)
	if len(m.Attachments) != 1 {
		t.Fatalf("attachments %+v", m.Attachments)
	}
	a := m.Attachments[0]
	if a.Color != "danger" || a.Title != "[FIRING] disk_full" || a.TitleLink != "https://reactor.example.com/alerts/7" {
		t.Errorf("colour %q, title %q, link %q", a.Color, a.Title, a.TitleLink)
	}
	// The summary cannot mention the channel or forge a link.
	if a.Text != "disk 95% on &lt;!channel&gt; &amp; db-3" {
		t.Errorf("text %q", a.Text)
	}
	if len(a.Fields) != 2 || a.Fields[0].Title != "host" || a.Fields[0].Value != "db-3" || !a.Fields[0].Short {
		t.Errorf("fields %+v", a.Fields)
	}
	if a.Ts != fixedTime.Unix() || !strings.Contains(a.Footer, "critical") || !strings.Contains(a.Footer, "alerts.disk_full") {
		t.Errorf("ts %d, footer %q", a.Ts, a.Footer)
	}
	if rec.URL != srv.URL+"/REDACTED" || rec.HTTPStatus != 200 || rec.Body == nil || rec.Body.Text != "ok" {
		t.Errorf("run record: url %q, status %d, body %+v", rec.URL, rec.HTTPStatus, rec.Body)
	}

	// Resolved: says so, in green; a text template overrides the text.
	s = &Slack{WebhookURL: srv.URL + "/services/x", Text: "{{.Summary}} on <{{.ConsoleURL}}|{{.Labels.host}}>", Client: srv.Client(), ConsoleURL: "https://r.example.com/"}
	if err := s.Process(context.Background(), message("alerts.disk_full", `{"status":"resolved","summary":"a<b","labels":{"host":"db-3"}}`)); err != nil {
		t.Fatal(err)
	}
	r = <-got
	decodeStrictly(t, r.body, &m)
	a = m.Attachments[0]
	if a.Color != "good" || a.Title != "[RESOLVED] disk_full" || a.Text != "a&lt;b on <https://r.example.com/alerts/7|db-3>" {
		t.Errorf("resolved: colour %q, title %q, text %q", a.Color, a.Title, a.Text)
	}
}

func TestSlackColours(t *testing.T) {
	t.Parallel()
	for sev, want := range map[string]string{"critical": "danger", "error": "#e8912d", "warning": "warning", "info": "#439fe0"} {
		m := slackMessageOf(TemplateData{Alert: mustDecode(t, "alerts.x", []byte(`{"severity":"`+sev+`"}`))}, "")
		if got := m.Attachments[0].Color; got != want {
			t.Errorf("%s: colour %q, want %q", sev, got, want)
		}
	}
}

// TestNotifierAnswers: how Slack's and PagerDuty's answers become
// outcomes, and that neither the webhook's path nor the routing key shows
// in an error.
func TestNotifierAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		reply     func(http.ResponseWriter, *http.Request)
		wantPerm  bool
		wantRetry time.Duration
	}{
		{name: "200", reply: status(http.StatusOK)},
		{name: "202", reply: status(http.StatusAccepted)},
		{name: "400", reply: status(http.StatusBadRequest), wantPerm: true},
		{name: "404 channel_not_found", reply: status(http.StatusNotFound), wantPerm: true},
		{name: "429 with Retry-After", reply: status(http.StatusTooManyRequests, "Retry-After", "30"), wantRetry: 30 * time.Second},
		{name: "429 without", reply: status(http.StatusTooManyRequests)},
		{name: "500", reply: status(http.StatusInternalServerError)},
		{name: "503", reply: status(http.StatusServiceUnavailable)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			echo := func(w http.ResponseWriter, r *http.Request) {
				// A server that echoes the request, secrets and all.
				var b strings.Builder
				_, _ = fmt.Fprintf(&b, "path %s ", r.URL.Path)
				body := make([]byte, 4096)
				n, _ := r.Body.Read(body)
				b.Write(body[:n])
				tt.reply(w, r)
				_, _ = w.Write([]byte(b.String()))
			}
			srv, _ := hookServer(t, echo)
			for _, act := range []action{
				&Slack{WebhookURL: srv.URL + "/services/T0SECRET1/B0SECRET2/SECRETTOKEN3", Client: srv.Client()},
				&PagerDuty{RoutingKey: "R0UTINGKEY0SECRET", URL: srv.URL + "/v2/enqueue", Client: srv.Client()},
			} {
				err := act.run(context.Background(), message("alerts.x", `{"summary":"x"}`), mustDecode(t, "alerts.x", []byte(`{"summary":"x"}`)), &Run{})
				if code := tt.name[:3]; code[0] == '2' {
					if err != nil {
						t.Errorf("%s: %v", act.kind(), err)
					}
					continue
				}
				var perm *processor.PermanentError
				var retry *processor.RetryError
				switch {
				case err == nil:
					t.Errorf("%s: no error", act.kind())
				case strings.Contains(err.Error(), "SECRET"):
					t.Errorf("%s: error reveals a secret: %v", act.kind(), err)
				case tt.wantPerm != errors.As(err, &perm):
					t.Errorf("%s: %v, permanent %v, want %v", act.kind(), err, !tt.wantPerm, tt.wantPerm)
				case tt.wantRetry > 0 && (!errors.As(err, &retry) || retry.After != tt.wantRetry):
					t.Errorf("%s: %v, want a retry after %s", act.kind(), err, tt.wantRetry)
				}
			}
		})
	}
}

// pagerDutyRequest is an Events API v2 body as PagerDuty documents it,
// decoded strictly.
type pagerDutyRequest struct {
	RoutingKey  string `json:"routing_key"`
	EventAction string `json:"event_action"`
	DedupKey    string `json:"dedup_key"`
	Payload     *struct {
		Summary       string         `json:"summary"`
		Source        string         `json:"source"`
		Severity      string         `json:"severity"`
		Timestamp     string         `json:"timestamp"`
		Component     string         `json:"component"`
		Group         string         `json:"group"`
		Class         string         `json:"class"`
		CustomDetails map[string]any `json:"custom_details"`
	} `json:"payload"`
	Client    string `json:"client"`
	ClientURL string `json:"client_url"`
	Links     []struct {
		Href string `json:"href"`
		Text string `json:"text"`
	} `json:"links"`
	Images []any `json:"images"`
}

// checkPagerDutyEvent fails t unless body is an event as PagerDuty's
// documentation describes it.
func checkPagerDutyEvent(t *testing.T, body []byte) pagerDutyRequest {
	t.Helper()
	var ev pagerDutyRequest
	decodeStrictly(t, body, &ev)
	if ev.RoutingKey == "" || ev.DedupKey == "" || len(ev.DedupKey) > 255 {
		t.Errorf("routing_key %q, dedup_key %q", ev.RoutingKey, ev.DedupKey)
	}
	switch ev.EventAction {
	case "trigger":
		p := ev.Payload
		if p == nil || p.Summary == "" || len([]rune(p.Summary)) > 1024 || p.Source == "" {
			t.Fatalf("trigger without summary or source: %s", body)
		}
		switch p.Severity {
		case "critical", "error", "warning", "info":
		default:
			t.Errorf("payload.severity %q", p.Severity)
		}
		if p.Timestamp != "" {
			if _, err := time.Parse(time.RFC3339, p.Timestamp); err != nil {
				t.Errorf("payload.timestamp %q: %v", p.Timestamp, err)
			}
		}
	case "resolve", "acknowledge":
	default:
		t.Errorf("event_action %q", ev.EventAction)
	}
	return ev
}

func pagerDutyServer(t *testing.T) (string, <-chan received) {
	srv, got := hookServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status":"success","message":"Event processed","dedup_key":"x"}`))
	})
	return srv.URL + "/v2/enqueue", got
}

func TestPagerDutyTriggerThenResolve(t *testing.T) {
	t.Parallel()
	url, got := pagerDutyServer(t)
	p := &PagerDuty{RoutingKey: "key-0123456789abcdef0123456789ab", URL: url, Severity: map[string]string{"warning": "error"},
		ConsoleURL: "https://reactor.example.com", entry: "page"}
	firing := `{"name":"DiskFull","severity":"warning","status":"firing","summary":"disk 95% on db-3","labels":{"alertname":"DiskFull","host":"db-3"},"annotations":{"runbook":"r"}}`
	if err := p.Process(context.Background(), message("alerts.DiskFull", firing)); err != nil {
		t.Fatal(err)
	}
	trigger := checkPagerDutyEvent(t, (<-got).body)
	if trigger.EventAction != "trigger" || trigger.Payload.Severity != "error" || trigger.Payload.Source != "db-3" ||
		trigger.Payload.Summary != "disk 95% on db-3" || trigger.Payload.Timestamp != "2026-01-02T03:04:05Z" || trigger.Payload.Class != "DiskFull" {
		t.Errorf("trigger %+v %+v", trigger, trigger.Payload)
	}
	if trigger.ClientURL != "https://reactor.example.com/alerts/7" || len(trigger.Links) != 1 || trigger.Links[0].Href != trigger.ClientURL {
		t.Errorf("links %q %+v", trigger.ClientURL, trigger.Links)
	}
	if l, _ := trigger.Payload.CustomDetails["labels"].(map[string]any); l["host"] != "db-3" {
		t.Errorf("custom_details %v", trigger.Payload.CustomDetails)
	}
	resolved := `{"name":"DiskFull","severity":"warning","status":"resolved","summary":"disk 95% on db-3","labels":{"alertname":"DiskFull","host":"db-3"}}`
	if err := p.Process(context.Background(), message("alerts.DiskFull", resolved)); err != nil {
		t.Fatal(err)
	}
	resolve := checkPagerDutyEvent(t, (<-got).body)
	if resolve.EventAction != "resolve" || resolve.DedupKey != trigger.DedupKey || resolve.Payload != nil {
		t.Errorf("resolve %+v, want dedup_key %q", resolve, trigger.DedupKey)
	}

	// Another host, group or entry is another incident.
	other := &PagerDuty{RoutingKey: "k", URL: url, entry: "page"}
	other.bindGroup("pager")
	keys := map[string]bool{trigger.DedupKey: true}
	for _, c := range []struct {
		p    *PagerDuty
		body string
	}{
		{p, strings.Replace(firing, `"host":"db-3"`, `"host":"db-4"`, 1)},
		{other, firing},
		{&PagerDuty{RoutingKey: "k", URL: url, entry: "other"}, firing},
	} {
		if err := c.p.Process(context.Background(), message("alerts.DiskFull", c.body)); err != nil {
			t.Fatal(err)
		}
		ev := checkPagerDutyEvent(t, (<-got).body)
		if keys[ev.DedupKey] {
			t.Errorf("dedup_key %q repeated", ev.DedupKey)
		}
		keys[ev.DedupKey] = true
	}
}

func TestPagerDutyDedupKeyTemplate(t *testing.T) {
	t.Parallel()
	url, got := pagerDutyServer(t)
	p := &PagerDuty{RoutingKey: "k", URL: url, DedupKey: "{{.Name}}/{{.Labels.host}}", Source: "{{.Labels.dc | default \"dc-1\"}}"}
	if err := p.Process(context.Background(), message("alerts.x", `{"labels":{"host":"db-3"}}`)); err != nil {
		t.Fatal(err)
	}
	if ev := checkPagerDutyEvent(t, (<-got).body); ev.DedupKey != "x/db-3" || ev.Payload.Source != "dc-1" || ev.Payload.Summary != "x" {
		t.Errorf("event %+v %+v", ev, ev.Payload)
	}
	long := &PagerDuty{RoutingKey: "k", URL: url, DedupKey: "{{.Summary}}"}
	if err := long.Process(context.Background(), message("alerts.x", `{"summary":"`+strings.Repeat("x", 300)+`"}`)); err != nil {
		t.Fatal(err)
	}
	if ev := checkPagerDutyEvent(t, (<-got).body); len(ev.DedupKey) != 64 {
		t.Errorf("a 300-character dedup_key sent as %q, want its SHA-256", ev.DedupKey)
	}
	empty := &PagerDuty{RoutingKey: "k", URL: url, DedupKey: "{{.Labels.nope}}"}
	var perm *processor.PermanentError
	if err := empty.Process(context.Background(), message("alerts.x", `{}`)); !errors.As(err, &perm) {
		t.Errorf("empty dedup_key: %v, want a permanent error", err)
	}
}

func TestNotifierConfigErrors(t *testing.T) {
	t.Setenv("REACTOR_TEST_SLACK", "https://hooks.slack.com/services/T0/B0/s3cret")
	for _, tt := range []struct{ name, yaml, want string }{
		{"slack without url", "handlers:\n  - on: a\n    slack: {text: hi}\n", "line 3: slack: webhook_url: a URL is required"},
		{"slack bad text", "handlers:\n  - on: a\n    slack: {webhook_url: \"${REACTOR_TEST_SLACK}\", text: \"{{.Sumary}}\"}\n", "line 3: slack: text: fails on a sample alert"},
		{"slack unknown field", "handlers:\n  - on: a\n    slack: {webhook: x}\n", `line 3: unknown field "webhook" in slack`},
		{"pagerduty without key", "handlers:\n  - on: a\n    pagerduty: {url: \"https://events.eu.pagerduty.com/v2/enqueue\"}\n", "line 3: pagerduty: routing_key is required"},
		{"pagerduty severity", "handlers:\n  - on: a\n    pagerduty: {routing_key: k, severity: {warning: high}}\n", `line 3: pagerduty: severity.warning: "high" is not a severity of PagerDuty's`},
		{"pagerduty reactor severity", "handlers:\n  - on: a\n    pagerduty: {routing_key: k, severity: {major: error}}\n", `line 3: pagerduty: severity: "major" is not a severity of reactor's`},
		{"pagerduty url", "handlers:\n  - on: a\n    pagerduty: {routing_key: k, url: events.pagerduty.com}\n", "line 3: pagerduty: url: want an absolute http:// or https:// URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error:\n got %v\nwant %s...", err, tt.want)
			}
		})
	}
	cfg, err := ParseConfig([]byte("handlers:\n  - on: a\n    slack: {webhook_url: \"${REACTOR_TEST_SLACK}\"}\n    pagerduty: {routing_key: k, dedup_key: \"{{.Name}}\"}\n"))
	if err != nil || cfg.Handlers[0].Slack.WebhookURL != "https://hooks.slack.com/services/T0/B0/s3cret" || cfg.Handlers[0].PagerDuty.DedupKey != "{{.Name}}" {
		t.Errorf("config %+v, %v", cfg.Handlers, err)
	}
}
