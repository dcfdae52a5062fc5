package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// hostileSummary tries to break out of a shell command, an argv and a JSON
// string at once.
const hostileSummary = `x"; touch "$PWNED"; echo "$(touch $PWNED)` + "`touch $PWNED`\n" + `", "injected": true, "y": "`

// TestExecTemplatedArgvAndEnv runs a real command whose arguments and
// environment come from the alert: each template is one argument, never
// split or interpreted by a shell, whatever the alert holds.
func TestExecTemplatedArgvAndEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, pwned := filepath.Join(dir, "out"), filepath.Join(dir, "pwned")
	e := &Exec{
		// The safe form: the script is fixed, the alert's values are its
		// arguments ("$1", "$2"...).
		Command: []string{"sh", "-c", `printf '%s\n' "$1" "$2" "$3" "$SERVICE" "$ATTEMPT" "$LINK" > "$OUT"`, "sh",
			"{{.Labels.service}}", "{{.Summary}}", "[{{.Labels.missing}}]"},
		Env: map[string]string{
			"OUT": out, "PWNED": pwned, "SERVICE": "{{.Labels.service | upper}}",
			"ATTEMPT": "{{.Delivered}}", "LINK": "{{.ConsoleURL}}",
		},
		ConsoleURL: "https://reactor.example.com/",
	}
	data, _ := json.Marshal(map[string]any{"summary": hostileSummary, "labels": map[string]string{"service": "postgres; rm -rf /"}})
	r := &Run{}
	if err := e.run(context.Background(), message("alerts.disk_full", string(data)), mustDecode(t, "alerts.disk_full", data), r); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "postgres; rm -rf /\n" + hostileSummary + "\n[]\nPOSTGRES; RM -RF /\n2\nhttps://reactor.example.com/alerts/7\n"
	if string(got) != want {
		t.Errorf("the command saw:\n%q\nwant\n%q", got, want)
	}
	if _, err := os.Stat(pwned); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the hostile summary ran a command: %v", err)
	}
	if len(r.Command) != 7 || r.Command[4] != "postgres; rm -rf /" || r.Command[5] != hostileSummary {
		t.Errorf("run record command %q, want the argv as run", r.Command)
	}
}

// TestExecTemplateFailsPermanently: a template that fails on this alert
// (not on the sample) is a permanent error naming the argument, and runs
// nothing.
func TestExecTemplateFailsPermanently(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	e := &Exec{Command: []string{"touch", ran, "{{.Summary | trunc 3}}", `{{index .Labels "x" | printf "%.1s"}}`, "{{index .Labels.n 3}}"}}
	err := e.Process(context.Background(), message("alerts.x", `{"summary":"abc","labels":{"n":"y"}}`))
	var perm *processor.PermanentError
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), "exec touch: command[4]") {
		t.Errorf("error %v, want a permanent one naming command[4]", err)
	}
	if _, err := os.Stat(ran); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the command ran")
	}
}

func TestExecRefusesNUL(t *testing.T) {
	t.Parallel()
	e := &Exec{Command: []string{"true", "{{.Summary}}"}}
	err := e.Process(context.Background(), message("alerts.x", `{"summary":"a\u0000b"}`))
	var perm *processor.PermanentError
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), "NUL") {
		t.Errorf("error %v, want a permanent one about the NUL byte", err)
	}
}

// TestWebhookTemplatedRequest posts a templated body, URL and headers to a
// local server.
func TestWebhookTemplatedRequest(t *testing.T) {
	t.Parallel()
	srv, got := hookServer(t, status(http.StatusOK))
	w := &Webhook{
		URL:     srv.URL + "/hosts/{{.Labels.host | urlquery}}?sev={{.Severity}}",
		Headers: map[string]string{"X-Alert": "{{.Name}}", "X-Summary": "{{.Summary}}", "Authorization": "Bearer tok-{{.Labels.team | lower}}"},
		Body:    `{"text": {{json .Summary}}, "host": {{json .Labels.host}}, "missing": {{json .Labels.nope}}, "attempt": {{.Delivered}}}`,
		Client:  srv.Client(),
	}
	data, _ := json.Marshal(map[string]any{"id": "a1", "name": "disk_full", "severity": "error", "summary": hostileSummary,
		"labels": map[string]string{"host": "db 3/a", "team": "DB"}})
	if err := w.Process(context.Background(), message("alerts.disk_full", string(data))); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.path != "/hosts/db+3%2Fa?sev=error" {
		t.Errorf("path %q", r.path)
	}
	if r.header.Get("X-Alert") != "disk_full" || r.header.Get("Authorization") != "Bearer tok-db" || r.header.Get("Idempotency-Key") != "a1" {
		t.Errorf("headers %v", r.header)
	}
	if h := r.header.Get("X-Summary"); strings.ContainsAny(h, "\r\n") || !strings.HasPrefix(h, `x"; touch`) {
		t.Errorf("X-Summary %q: want the summary with its newline as a space", h)
	}
	var body map[string]any
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if len(body) != 4 || body["text"] != hostileSummary || body["host"] != "db 3/a" || body["missing"] != "" || body["attempt"] != 2.0 {
		t.Errorf("body %v", body)
	}
}

func TestWebhookTextBody(t *testing.T) {
	t.Parallel()
	srv, got := hookServer(t, status(http.StatusOK))
	w := &Webhook{URL: srv.URL, Headers: map[string]string{"Content-Type": "text/plain"}, Body: "{{.Name}}: {{.Summary}}", Client: srv.Client()}
	if err := w.Process(context.Background(), message("alerts.disk_full", `{"summary":"disk \"full\""}`)); err != nil {
		t.Fatal(err)
	}
	if r := <-got; string(r.body) != `disk_full: disk "full"` || r.header.Get("Content-Type") != "text/plain" {
		t.Errorf("body %q, content type %q", r.body, r.header.Get("Content-Type"))
	}
}

// TestWebhookTemplateErrors: what the config check refuses, and what a
// render refuses at run time (permanent), never repeating a secret.
func TestWebhookTemplateErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		w    *Webhook
		want string
	}{
		{"hand-quoted JSON", &Webhook{URL: "https://h/x", Body: `{"text": "{{.Summary}}"}`}, "webhook: body: not valid JSON"},
		{"hand-quoted name", &Webhook{URL: "https://h/x", Body: `{"name": "{{.Name}}"}`}, "webhook: body: not valid JSON"},
		{"hand-quoted label", &Webhook{URL: "https://h/x", Body: `{"host": "{{index .Labels "host"}}"}`}, "webhook: body: not valid JSON"},
		{"body typo", &Webhook{URL: "https://h/x", Body: `{"text": {{json .Sumary}}}`}, "webhook: body: fails on a sample alert"},
		{"url not absolute", &Webhook{URL: "{{.Labels.host}}/x?token=s3cret"}, "webhook: URL must be an absolute http:// or https:// URL (rendered on a sample alert)"},
		{"header template", &Webhook{URL: "https://h/x", Headers: map[string]string{"X-Token": "s3cret{{.Nope}}"}}, "webhook: headers.X-Token: fails on a sample alert"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.w.validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %v, want %q and no secret", err, tt.want)
			}
		})
	}

	// At run time: the URL renders without a host for this alert.
	w := &Webhook{URL: "https://{{.Labels.host}}/x"}
	err := w.Process(context.Background(), message("alerts.x", `{"summary":"x"}`))
	var perm *processor.PermanentError
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("URL without a host: %v, want a permanent error", err)
	}
}

func TestParseConfigTemplateErrors(t *testing.T) {
	t.Setenv("REACTOR_TEST_HOOK", "https://hooks.example.com/s3cret")
	for _, tt := range []struct{ name, yaml, want string }{
		{"argv", "handlers:\n  - on: a\n    exec:\n      command:\n        - restart\n        - \"{{.Labels.host\"\n",
			`line 6: exec.command[1]: not a valid template: 1: unclosed action`},
		{"env", "handlers:\n  - on: a\n    exec:\n      command: [x]\n      env:\n        HOST: \"{{.Lables.host}}\"\n",
			`line 6: exec.env.HOST: fails on a sample alert: 1:9: executing "env.HOST" at <.Lables.host>: can't evaluate field Lables in type handlers.TemplateData`},
		{"body", "handlers:\n  - on: a\n    webhook:\n      body: '{\"text\": \"{{.Summary}}\"}'\n      url: ${REACTOR_TEST_HOOK}\n",
			`line 4: webhook: body: not valid JSON`},
		{"url", "handlers:\n  - on: a\n    webhook:\n      url: \"${REACTOR_TEST_HOOK}/{{.Nope}}\"\n",
			`line 4: webhook: url: fails on a sample alert`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error:\n got %v\nwant %s...", err, tt.want)
			}
		})
	}
}

func mustDecode(t *testing.T, subject string, data []byte) stream.Alert {
	t.Helper()
	a, err := Decode(message(subject, string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestWebhookURLFromEnvRedacted: a chat webhook's URL from the environment
// carries its token in the path: errors and run records show the host only.
func TestWebhookURLFromEnvRedacted(t *testing.T) {
	srv, _ := hookServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("unknown webhook " + r.URL.Path))
	})
	t.Setenv("REACTOR_TEST_CHAT_URL", srv.URL+"/api/webhooks/1234567890/T0KEN-s3cret-abcdef")
	cfg, err := ParseConfig([]byte("handlers:\n  - on: alerts.>\n    webhook: {url: \"${REACTOR_TEST_CHAT_URL}?wait=true\", body: '{\"content\": {{json .Summary}}}'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewRules(cfg, Deps{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	rec := &Run{}
	m := message("alerts.x", `{"summary":"x"}`)
	err = rs.rules[0].actions[0].run(context.Background(), m, mustDecode(t, "alerts.x", m.Data()), rec)
	var perm *processor.PermanentError
	if !errors.As(err, &perm) || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "1234567890") {
		t.Errorf("error %v: want a permanent one without the token", err)
	}
	if want := srv.URL + "/REDACTED?wait=REDACTED"; rec.URL != want || (rec.Body != nil && strings.Contains(rec.Body.Text, "s3cret")) {
		t.Errorf("run record url %q body %+v, want %s and no token", rec.URL, rec.Body, want)
	}
}
