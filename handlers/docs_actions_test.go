package handlers

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/reactor-alerts/reactor/processor"
)

// The request bodies docs/actions.md shows for Microsoft Teams, Discord
// and Opsgenie are tested here: each example is read from the page,
// loaded as an entry, run on alerts (a hostile summary among them) and
// posted to a local server that checks the request against the service's
// documented shape.

const actionsDoc = "../docs/actions.md"

// docYAML is one yaml block of the page, with the example name the
// comment before it gives, if any.
type docYAML struct {
	example string
	line    int
	text    string
}

var exampleComment = regexp.MustCompile(`^<!-- example: ([a-z-]+) -->$`)

func readDocYAML(t *testing.T) []docYAML {
	t.Helper()
	src, err := os.ReadFile(actionsDoc)
	if err != nil {
		t.Fatal(err)
	}
	var out []docYAML
	lines := strings.Split(string(src), "\n")
	for i := 0; i < len(lines); i++ {
		if lines[i] != "```yaml" {
			continue
		}
		b := docYAML{line: i + 2}
		if i > 0 {
			if m := exampleComment.FindStringSubmatch(lines[i-1]); m != nil {
				b.example = m[1]
			}
		}
		j := i + 1
		for ; j < len(lines) && lines[j] != "```"; j++ {
		}
		b.text = strings.Join(lines[i+1:j], "\n") + "\n"
		out = append(out, b)
		i = j
	}
	return out
}

// asConfig makes a block a config: as written if it has handlers, else as
// the one entry it is (with on) or whose action it is (without).
func (b docYAML) asConfig(t *testing.T) string {
	t.Helper()
	var top map[string]any
	if err := yaml.Unmarshal([]byte(b.text), &top); err != nil {
		t.Fatalf("%s:%d: %v", actionsDoc, b.line, err)
	}
	if _, ok := top["handlers"]; ok {
		return b.text
	}
	text := b.text
	if _, ok := top["on"]; !ok {
		text = "on: \"alerts.>\"\n" + text
	}
	var c strings.Builder
	c.WriteString("handlers:\n")
	for i, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if i == 0 {
			c.WriteString("  - " + l + "\n")
		} else {
			c.WriteString("    " + l + "\n")
		}
	}
	return c.String()
}

// docEnv is what the page's ${VAR}s stand for in the tests: real-looking
// URLs, which docServer answers whatever their host.
var docEnv = map[string]string{
	"TEAMS_WEBHOOK_URL":   "https://prod-42.westeurope.logic.azure.com:443/workflows/0f1e2d/triggers/manual/paths/invoke?api-version=2016-06-01&sig=s3cretSig",
	"DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1234567890123/T0KEN-s3cret",
	"OPSGENIE_API_URL":    "https://api.opsgenie.com",
	"OPSGENIE_API_KEY":    "0123-genie-key",
	"SLACK_WEBHOOK_URL":   "https://hooks.slack.com/services/T0/B0/s3cret",
	"PD_ROUTING_KEY":      "0123456789abcdef0123456789abcdef",
}

// TestDocsActionsLoad: every yaml block of the page loads, as a config or
// as the entry it shows.
func TestDocsActionsLoad(t *testing.T) {
	for k, v := range docEnv {
		t.Setenv(k, v)
	}
	blocks := readDocYAML(t)
	examples := 0
	for _, b := range blocks {
		if _, err := ParseConfig([]byte(b.asConfig(t))); err != nil {
			t.Errorf("%s:%d: %v", actionsDoc, b.line, err)
		}
		if b.example != "" {
			examples++
		}
	}
	if len(blocks) < 8 || examples != 4 {
		t.Errorf("%d yaml blocks, %d examples: the page has more", len(blocks), examples)
	}
}

// docRequest is one request docServer received.
type docRequest struct {
	host, path, query, auth, contentType string
	body                                 []byte
}

// docServer answers every host's requests locally (a TLS server and a
// client that dials it whatever the URL says), with status.
func docServer(t *testing.T, status int) (*http.Client, <-chan docRequest) {
	t.Helper()
	got := make(chan docRequest, 10)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- docRequest{host: r.Host, path: r.URL.Path, query: r.URL.RawQuery, auth: r.Header.Get("Authorization"),
			contentType: r.Header.Get("Content-Type"), body: body}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the test server's certificate names example.com
	client := &http.Client{Transport: tr}
	t.Cleanup(client.CloseIdleConnections)
	return client, got
}

// docAlerts are what the examples run on: each severity, a resolved
// alert, and a summary trying to break out of the JSON document.
var docAlerts = []string{
	`{"severity":"critical","summary":"disk 95% on db-3","labels":{"host":"db-3","team":"db"}}`,
	`{"severity":"error","summary":"replication lag","labels":{"host":"db-4"}}`,
	`{"severity":"warning","summary":"` + strings.Repeat("long ", 1000) + `"}`,
	`{"severity":"info","summary":"\", \"injected\": true, \"x\": \"\n@everyone <b>ünïcødé</b>","labels":{"host":"a\"b"}}`,
	`{"severity":"critical","status":"resolved","summary":"disk 60% on db-3","labels":{"host":"db-3","team":"db"}}`,
}

// runExample runs the example called name on each alert of docAlerts that
// its entry takes, and returns the requests it made.
func runExample(t *testing.T, name string) []docRequest {
	t.Helper()
	var block *docYAML
	for _, b := range readDocYAML(t) {
		if b.example == name {
			block = &b
		}
	}
	if block == nil {
		t.Fatalf("%s has no example %q", actionsDoc, name)
	}
	cfg, err := ParseConfig([]byte(block.asConfig(t)))
	if err != nil {
		t.Fatalf("%s:%d: %v", actionsDoc, block.line, err)
	}
	client, got := docServer(t, http.StatusAccepted)
	rs, err := NewRules(cfg, Deps{HTTPClient: client, ConsoleURL: "https://reactor.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []docRequest
	for i, data := range docAlerts {
		m := processor.NewMessage("alerts.disk_full", []byte(data), nil,
			processor.MessageInfo{Stream: "ALERTS", Sequence: uint64(i + 1), Delivered: 1, Timestamp: fixedTime})
		h, entry := rs.Route(m)
		if entry == "" {
			continue // another entry's alert (firing or resolved)
		}
		if err := h.Process(context.Background(), m); err != nil {
			t.Fatalf("alert %d: %v", i, err)
		}
		select {
		case r := <-got:
			if r.contentType != "application/json" {
				t.Errorf("alert %d: Content-Type %q", i, r.contentType)
			}
			reqs = append(reqs, r)
		case <-time.After(10 * time.Second):
			t.Fatalf("alert %d: no request", i)
		}
	}
	return reqs
}

// strict decodes body into v, refusing unknown fields: a field the
// example misspells fails.
func strict(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
}

func maxLen(t *testing.T, what, s string, n int) {
	t.Helper()
	if utf8.RuneCountInString(s) > n {
		t.Errorf("%s: %d characters, at most %d", what, utf8.RuneCountInString(s), n)
	}
}

// TestDocsTeamsExample: a message with one Adaptive Card, as Teams'
// "Send Adaptive Cards using an Incoming Webhook" documents it.
func TestDocsTeamsExample(t *testing.T) {
	for k, v := range docEnv {
		t.Setenv(k, v)
	}
	reqs := runExample(t, "teams")
	if len(reqs) != len(docAlerts) {
		t.Fatalf("%d requests for %d alerts", len(reqs), len(docAlerts))
	}
	type element struct {
		Type   string                          `json:"type"`
		Text   *string                         `json:"text"`
		Size   string                          `json:"size"`
		Weight string                          `json:"weight"`
		Wrap   bool                            `json:"wrap"`
		Color  string                          `json:"color"`
		Facts  []struct{ Title, Value string } `json:"facts"`
	}
	for i, r := range reqs {
		if r.host != "prod-42.westeurope.logic.azure.com:443" || r.path != "/workflows/0f1e2d/triggers/manual/paths/invoke" || !strings.Contains(r.query, "sig=") {
			t.Errorf("request %d to %s%s?%s", i, r.host, r.path, r.query)
		}
		var msg struct {
			Type        string `json:"type"`
			Attachments []struct {
				ContentType string  `json:"contentType"`
				ContentURL  *string `json:"contentUrl"`
				Content     struct {
					Schema  string    `json:"$schema"`
					Type    string    `json:"type"`
					Version string    `json:"version"`
					Body    []element `json:"body"`
					Actions []struct {
						Type  string `json:"type"`
						Title string `json:"title"`
						URL   string `json:"url"`
					} `json:"actions"`
				} `json:"content"`
			} `json:"attachments"`
		}
		strict(t, r.body, &msg)
		if msg.Type != "message" || len(msg.Attachments) != 1 {
			t.Fatalf("request %d: type %q, %d attachments", i, msg.Type, len(msg.Attachments))
		}
		a := msg.Attachments[0]
		c := a.Content
		if a.ContentType != "application/vnd.microsoft.card.adaptive" || c.Type != "AdaptiveCard" || c.Version == "" ||
			c.Schema != "http://adaptivecards.io/schemas/adaptive-card.json" || len(c.Body) == 0 {
			t.Errorf("request %d: card %+v", i, a)
		}
		for _, e := range c.Body {
			switch e.Type {
			case "TextBlock":
				if e.Text == nil {
					t.Errorf("request %d: a TextBlock without text", i)
				}
				switch e.Color {
				case "", "Default", "Dark", "Light", "Accent", "Good", "Warning", "Attention":
				default:
					t.Errorf("request %d: TextBlock colour %q", i, e.Color)
				}
			case "FactSet":
				if len(e.Facts) == 0 {
					t.Errorf("request %d: an empty FactSet", i)
				}
			default:
				t.Errorf("request %d: element %q", i, e.Type)
			}
		}
		if len(c.Actions) != 1 || c.Actions[0].Type != "Action.OpenUrl" || c.Actions[0].URL != fmt.Sprintf("https://reactor.example.com/alerts/%d", i+1) {
			t.Errorf("request %d: actions %+v", i, c.Actions)
		}
	}
	var last struct {
		Attachments []struct {
			Content struct {
				Body []element `json:"body"`
			} `json:"content"`
		} `json:"attachments"`
	}
	_ = json.Unmarshal(reqs[3].body, &last)
	if got := *last.Attachments[0].Content.Body[1].Text; !strings.HasPrefix(got, `", "injected": true`) {
		t.Errorf("the hostile summary came back as %q", got)
	}
}

// TestDocsDiscordExample: an execute-webhook body with one embed, within
// Discord's documented limits.
func TestDocsDiscordExample(t *testing.T) {
	for k, v := range docEnv {
		t.Setenv(k, v)
	}
	reqs := runExample(t, "discord")
	if len(reqs) != len(docAlerts) {
		t.Fatalf("%d requests for %d alerts", len(reqs), len(docAlerts))
	}
	colours := map[int]bool{}
	for i, r := range reqs {
		if r.host != "discord.com" || r.path != "/api/webhooks/1234567890123/T0KEN-s3cret" {
			t.Errorf("request %d to %s%s", i, r.host, r.path)
		}
		var msg struct {
			Content         *string `json:"content"`
			Username        string  `json:"username"`
			AllowedMentions struct {
				Parse []string `json:"parse"`
			} `json:"allowed_mentions"`
			Embeds []struct {
				Title       string `json:"title"`
				Description string `json:"description"`
				URL         string `json:"url"`
				Color       int    `json:"color"`
				Timestamp   string `json:"timestamp"`
				Fields      []struct {
					Name   string `json:"name"`
					Value  string `json:"value"`
					Inline bool   `json:"inline"`
				} `json:"fields"`
			} `json:"embeds"`
		}
		strict(t, r.body, &msg)
		if msg.Content == nil && len(msg.Embeds) == 0 {
			t.Errorf("request %d: neither content nor embeds", i)
		}
		if msg.AllowedMentions.Parse == nil || len(msg.AllowedMentions.Parse) != 0 {
			t.Errorf("request %d: allowed_mentions %+v: want none parsed", i, msg.AllowedMentions)
		}
		if len(msg.Embeds) > 10 {
			t.Errorf("request %d: %d embeds", i, len(msg.Embeds))
		}
		total := 0
		for _, e := range msg.Embeds {
			maxLen(t, "title", e.Title, 256)
			maxLen(t, "description", e.Description, 4096)
			total += utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description)
			if e.Color < 0 || e.Color > 0xFFFFFF {
				t.Errorf("request %d: colour %d", i, e.Color)
			}
			colours[e.Color] = true
			if _, err := time.Parse(time.RFC3339, e.Timestamp); err != nil {
				t.Errorf("request %d: timestamp %q: %v", i, e.Timestamp, err)
			}
			if len(e.Fields) > 25 {
				t.Errorf("request %d: %d fields", i, len(e.Fields))
			}
			for _, f := range e.Fields {
				if f.Name == "" || f.Value == "" {
					t.Errorf("request %d: empty field %+v", i, f)
				}
				maxLen(t, "field name", f.Name, 256)
				maxLen(t, "field value", f.Value, 1024)
				total += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
			}
			if e.URL != fmt.Sprintf("https://reactor.example.com/alerts/%d", i+1) {
				t.Errorf("request %d: url %q", i, e.URL)
			}
		}
		if total > 6000 {
			t.Errorf("request %d: %d characters in embeds, at most 6000", i, total)
		}
	}
	if len(colours) != len(docAlerts) {
		t.Errorf("colours %v: want one per severity and one for resolved", colours)
	}
}

// TestDocsOpsgenieExample: create (firing) and close (resolved) requests
// as Opsgenie's alert API documents them.
func TestDocsOpsgenieExample(t *testing.T) {
	for k, v := range docEnv {
		t.Setenv(k, v)
	}
	creates := runExample(t, "opsgenie-create")
	if len(creates) != 4 {
		t.Fatalf("%d create requests for 4 firing alerts", len(creates))
	}
	aliases := map[string]bool{}
	for i, r := range creates {
		if r.host != "api.opsgenie.com" || r.path != "/v2/alerts" || r.auth != "GenieKey 0123-genie-key" {
			t.Errorf("create %d: %s%s, Authorization %q", i, r.host, r.path, r.auth)
		}
		var a struct {
			Message     string            `json:"message"`
			Alias       string            `json:"alias"`
			Description string            `json:"description"`
			Responders  []any             `json:"responders"`
			VisibleTo   []any             `json:"visibleTo"`
			Actions     []string          `json:"actions"`
			Tags        []string          `json:"tags"`
			Details     map[string]string `json:"details"`
			Entity      string            `json:"entity"`
			Source      string            `json:"source"`
			Priority    string            `json:"priority"`
			User        string            `json:"user"`
			Note        string            `json:"note"`
		}
		strict(t, r.body, &a)
		if a.Message == "" {
			t.Errorf("create %d: no message", i)
		}
		maxLen(t, "message", a.Message, 130)
		maxLen(t, "alias", a.Alias, 512)
		maxLen(t, "description", a.Description, 15000)
		maxLen(t, "entity", a.Entity, 512)
		maxLen(t, "source", a.Source, 100)
		if len(a.Tags) > 20 {
			t.Errorf("create %d: %d tags", i, len(a.Tags))
		}
		for _, tag := range a.Tags {
			maxLen(t, "tag", tag, 50)
		}
		switch a.Priority {
		case "P1", "P2", "P3", "P4", "P5":
		default:
			t.Errorf("create %d: priority %q", i, a.Priority)
		}
		aliases[a.Alias] = true
	}
	closes := runExample(t, "opsgenie-close")
	if len(closes) != 1 {
		t.Fatalf("%d close requests for 1 resolved alert", len(closes))
	}
	r := closes[0]
	if r.host != "api.opsgenie.com" || r.path != "/v2/alerts/disk_full-db-3/close" || r.query != "identifierType=alias" || r.auth != "GenieKey 0123-genie-key" {
		t.Errorf("close: %s%s?%s, Authorization %q", r.host, r.path, r.query, r.auth)
	}
	if !aliases["disk_full-db-3"] {
		t.Errorf("close of alias disk_full-db-3, created %v", aliases)
	}
	var c struct {
		User   string `json:"user"`
		Source string `json:"source"`
		Note   string `json:"note"`
	}
	strict(t, r.body, &c)
	maxLen(t, "source", c.Source, 100)
}
