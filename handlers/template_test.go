package handlers

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/reactor-alerts/reactor/stream"
)

// templateAlert is the alert the template tables render.
var templateAlert = TemplateData{
	Alert: stream.Alert{
		ID: "01ALERT", Name: "disk_full", Subject: "alerts.disk_full", Severity: stream.SeverityCritical,
		Summary:     "disk 95% on db-3",
		Labels:      map[string]string{"host": "db-3", "team": "DB", "service": "postgres"},
		Annotations: map[string]string{"runbook": "https://runbooks.example.com/disk?x=1&y=2"},
		Source:      "prometheus", Timestamp: fixedTime, Status: stream.StatusFiring,
	},
	Delivered:  2,
	ConsoleURL: "https://reactor.example.com/alerts/7",
}

func TestTemplateRender(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, tmpl, want string }{
		{"no action", "restart", "restart"},
		{"fields", "{{.ID}} {{.Name}} {{.Subject}} {{.Severity}} {{.Source}} {{.Status}}", "01ALERT disk_full alerts.disk_full critical prometheus firing"},
		{"summary", "{{.Summary}}", "disk 95% on db-3"},
		{"label", "{{.Labels.host}}", "db-3"},
		{"missing label is empty", "[{{.Labels.nope}}]", "[]"},
		{"missing label through index", `[{{index .Labels "nope"}}]`, "[]"},
		{"missing annotation", "[{{.Annotations.nope}}]", "[]"},
		{"delivery and link", "{{.Delivered}} {{.ConsoleURL}}", "2 https://reactor.example.com/alerts/7"},
		{"timestamp", `{{.Timestamp.Format "2006-01-02T15:04:05Z07:00"}}`, "2026-01-02T03:04:05Z"},
		{"json string", "{{json .Summary}}", `"disk 95% on db-3"`},
		{"json map", "{{json .Labels}}", `{"host":"db-3","service":"postgres","team":"DB"}`},
		{"json number", "{{json .Delivered}}", "2"},
		{"json missing label", "{{json .Labels.nope}}", `""`},
		{"json keeps & and <", `{{json "a&b<c>"}}`, `"a&b<c>"`},
		{"default when missing", `{{.Labels.region | default "eu"}}`, "eu"},
		{"default when set", `{{.Labels.host | default "eu"}}`, "db-3"},
		{"default of zero", `{{0 | default 5}}`, "5"},
		{"lower", "{{lower .Labels.team}}", "db"},
		{"upper", "{{.Severity | upper}}", "CRITICAL"},
		{"join map", `{{join ", " .Labels}}`, "host=db-3, service=postgres, team=DB"},
		{"join empty map", `[{{join ", " .Annotations.x}}]`, "[]"},
		{"trunc", "{{.Summary | trunc 4}}", "disk"},
		{"trunc longer than text", "{{.Summary | trunc 100}}", "disk 95% on db-3"},
		{"trunc unicode by character", `{{"ünïcødé" | trunc 3}}`, "ünï"},
		{"urlquery", "{{.Annotations.runbook | urlquery}}", "https%3A%2F%2Frunbooks.example.com%2Fdisk%3Fx%3D1%26y%3D2"},
		{"range over labels", "{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}", "host=db-3;service=postgres;team=DB;"},
		{"if on a label", `{{if eq .Labels.host "db-3"}}yes{{end}}`, "yes"},
		{"printf", `{{printf "%s on %s" .Name .Labels.host}}`, "disk_full on db-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tm, err := parseTemplate("x", tt.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tm.render(templateAlert, maxFieldLen)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("%s = %q, want %q", tt.tmpl, got, tt.want)
			}
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, tmpl, want string }{
		{"unclosed", "{{.Name", "not a valid template: 1: unclosed action"},
		{"unknown function", "{{nope .Name}}", `not a valid template: 1: function "nope" not defined`},
		{"typo", "{{.Lables.host}}", "fails on a sample alert: 1:9: executing \"x\" at <.Lables.host>: can't evaluate field Lables in type handlers.TemplateData"},
		{"trunc negative", "{{.Summary | trunc -1}}", "trunc: negative length -1"},
		{"join a number", `{{join "," .Delivered}}`, "join: want a list or a map, got int"},
		{"template", `{{define "a"}}x{{end}}{{template "a"}}`, "{{template}} is not allowed"},
		{"range over a number", "{{range 5}}x{{end}}", "range over 5: range over the alert's fields only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tm, err := parseTemplate("x", tt.tmpl)
			if err == nil {
				_, err = tm.checkSample(tm.sampleData(false), maxFieldLen)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: error %v, want %q", tt.tmpl, err, tt.want)
			}
		})
	}
}

// TestTemplateJSONEscaping: values written with json stay JSON strings
// whatever they hold, and a body that quotes them by hand is refused at
// load, on the hostile sample alert.
func TestTemplateJSONEscaping(t *testing.T) {
	t.Parallel()
	body, err := parseTemplate("body", `{"summary": {{json .Summary}}, "host": {{json .Labels.host}}, "labels": {{json .Labels}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := body.checkJSONSample(); err != nil {
		t.Fatalf("a body written with json refused: %v", err)
	}
	for _, summary := range []string{
		`quote " and backslash \`,
		"new\nline\r\tand tab",
		"ünïcødé 🚨 \u2028 separators \u2029",
		"control \x01 \x1f",
		// A hostile summary that tries to close the string and add a key.
		`", "severity": "info", "x": "`,
		`\", "injected": true, "y": \"`,
		"</script><script>alert(1)</script>",
	} {
		d := templateAlert
		d.Summary = summary
		d.Labels = map[string]string{"host": summary}
		out, err := body.renderJSON(d, maxBodyLen)
		if err != nil {
			t.Fatalf("summary %q: %v", summary, err)
		}
		var got struct {
			Summary string            `json:"summary"`
			Host    string            `json:"host"`
			Labels  map[string]string `json:"labels"`
		}
		dec := json.NewDecoder(strings.NewReader(string(out)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("summary %q: body %s: %v", summary, out, err)
		}
		if got.Summary != summary || got.Host != summary || got.Labels["host"] != summary {
			t.Errorf("summary %q came back as %q, host %q", summary, got.Summary, got.Host)
		}
	}

	// Quoted by hand, the same body breaks on a quote: refused at load.
	naive, err := parseTemplate("body", `{"summary": "{{.Summary}}"}`)
	if err != nil {
		t.Fatal(err)
	}
	err = naive.checkJSONSample()
	if err == nil || !strings.Contains(err.Error(), "write each value with json") {
		t.Errorf("hand-quoted body: %v, want it refused with the advice", err)
	}
	// What the check prevents: a summary that closes the string adds a key.
	d := templateAlert
	d.Summary = `", "severity": "info`
	out, err := naive.renderJSON(d, maxBodyLen)
	var got map[string]string
	if err != nil || json.Unmarshal(out, &got) != nil || got["severity"] != "info" {
		t.Errorf("hand-quoted body with a hostile summary: %s, %v; want the injected key (which is why it is refused)", out, err)
	}
}

func TestTemplateBounded(t *testing.T) {
	t.Parallel()
	tm, err := parseTemplate("x", "{{range .Labels}}{{.}}{{.}}{{end}}")
	if err != nil {
		t.Fatal(err)
	}
	d := templateAlert
	d.Labels = map[string]string{"a": strings.Repeat("x", maxFieldLen)}
	if _, err := tm.render(d, maxFieldLen); err == nil || !strings.Contains(err.Error(), "longer than 65536 bytes") {
		t.Errorf("error %v, want the bound", err)
	}
}

// TestTemplateSampleFillsReadLabels: the labels a template reads are in
// the sample alert, so that {{.Labels.host}} renders something at load.
func TestTemplateSampleFillsReadLabels(t *testing.T) {
	t.Parallel()
	tm, err := parseTemplate("x", `{{.Labels.host}} {{index .Labels "team"}} {{$.Annotations.runbook}} {{with .Labels}}{{.zone}}{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	a := tm.sampleAlert(true)
	for _, k := range []string{"host", "team"} {
		if !strings.Contains(a.Labels[k], `"`) {
			t.Errorf("label %s of the hostile sample = %q, want a quote in it", k, a.Labels[k])
		}
	}
	if a.Annotations["runbook"] == "" {
		t.Errorf("annotation runbook not in the sample: %v", a.Annotations)
	}
}

func TestExpandTemplateEnv(t *testing.T) {
	t.Setenv("REACTOR_TEST_TPL_SECRET", `s3{{cr"et`)
	got, err := expandTemplateEnv("Bearer ${REACTOR_TEST_TPL_SECRET}")
	if err != nil {
		t.Fatal(err)
	}
	tm, err := parseTemplate("h", got)
	if err != nil {
		t.Fatalf("a secret holding {{ broke the template: %v", err)
	}
	if out, err := tm.render(templateAlert, maxFieldLen); err != nil || out != `Bearer s3{{cr"et` {
		t.Errorf("rendered %q, %v; want the secret as written", out, err)
	}
}
