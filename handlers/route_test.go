package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

func TestRulesExampleConfig(t *testing.T) {
	t.Setenv("HOOK_TOKEN", "tok")
	cfg, err := LoadConfig(filepath.Join(testdata, "reactor.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r, err := NewRules(cfg, Deps{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	for subject, want := range map[string]string{
		"alerts.terminator_detected":   "alerts.terminator_detected",
		"alerts.disk.db-3":             "alerts.disk.*",
		"alerts.disk_full":             "alerts.>",
		"alerts.disk.db-3.var":         "alerts.>",
		"alerts.terminator_detected.x": "alerts.>",
		"metrics.cpu":                  "",
	} {
		if _, got := r.Route(message(subject, "x")); got != want {
			t.Errorf("Route(%q) entry = %q, want %q", subject, got, want)
		}
	}

	// The catch-all only prints: safe to run here.
	if err := r.Process(context.Background(), message("alerts.cpu_high", "cpu 99%")); err != nil {
		t.Fatal(err)
	}
	if want := "2026-01-02T03:04:05Z WARNING  alerts.cpu_high cpu 99% id=- seq=7 delivered=2\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	err = r.Process(context.Background(), message("metrics.cpu", "x"))
	if !errors.Is(err, processor.ErrNoHandler) {
		t.Errorf("unrouted subject: %v, want ErrNoHandler", err)
	}
}

func TestRulesDefault(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	r, err := NewRules(Config{Print: PrintConfig{Format: FormatJSON}}, Deps{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Entries(); !reflect.DeepEqual(got, []string{PatternDefault}) {
		t.Errorf("entries %q, want the default", got)
	}
	if err := r.Process(context.Background(), message("alerts.a.b", `{"summary":"s"}`)); err != nil {
		t.Fatal(err)
	}
	var rec printRecord
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil || rec.Subject != "alerts.a.b" || rec.Seq != 7 {
		t.Errorf("JSON output %q (%v), want a record of the alert", out.String(), err)
	}
}

// actionsSetup compiles one entry that prints, runs a command and calls a
// webhook, and returns the rules, the printed output, the file the command
// writes and the requests the webhook server receives.
func actionsSetup(t *testing.T, script string) (*Rules, *bytes.Buffer, string, <-chan received) {
	t.Helper()
	srv, got := hookServer(t, status(http.StatusOK))
	file := filepath.Join(t.TempDir(), "exec.json")
	cfg := Config{Handlers: []Entry{{
		On:      "alerts.terminator_detected",
		Print:   true,
		Exec:    &ExecConfig{Command: []string{"sh", "-c", script}, Env: map[string]string{"OUT": file}},
		Webhook: &WebhookConfig{URL: srv.URL, Headers: map[string]string{"X-Token": "t"}},
	}}}
	var out bytes.Buffer
	r, err := NewRules(cfg, Deps{Out: &out, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return r, &out, file, got
}

func TestRulesRunEveryAction(t *testing.T) {
	t.Parallel()
	r, out, file, got := actionsSetup(t, `cat > "$OUT"`)
	if err := r.Process(context.Background(), message("alerts.terminator_detected", "bad robot")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), " alerts.terminator_detected bad robot ") {
		t.Errorf("printed %q", out.String())
	}
	raw, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(raw), `"summary":"bad robot"`) {
		t.Errorf("command got %q (%v)", raw, err)
	}
	select {
	case req := <-got:
		if !strings.Contains(string(req.body), `"summary":"bad robot"`) || req.header.Get("X-Token") != "t" {
			t.Errorf("webhook got %q, X-Token %q", req.body, req.header.Get("X-Token"))
		}
	default:
		t.Error("the webhook was not called")
	}
}

func TestRulesStopAtFirstFailure(t *testing.T) {
	t.Parallel()
	r, out, _, got := actionsSetup(t, "exit 1")
	err := r.Process(context.Background(), message("alerts.terminator_detected", "bad robot"))
	var perm *processor.PermanentError
	if err == nil || errors.As(err, &perm) || !strings.Contains(err.Error(), "exec sh: exit status 1") {
		t.Fatalf("error %v, want the command's retryable failure", err)
	}
	if out.Len() == 0 {
		t.Error("print, which comes first, did not run")
	}
	select {
	case <-got:
		t.Error("the webhook was called after the command failed")
	default:
	}

	// A payload that is not an alert does nothing at all.
	out.Reset()
	err = r.Process(context.Background(), message("alerts.terminator_detected", "\xff"))
	if !errors.As(err, &perm) || out.Len() != 0 {
		t.Errorf("bad alert: %v, printed %q; want a permanent error and no output", err, out.String())
	}
}

func TestNewRulesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  Config
		want string
	}{
		{
			cfg:  Config{Handlers: []Entry{{On: "alerts.>", Print: true}, {On: "alerts.x", Limit: &LimitConfig{Concurrent: 1}}}},
			want: `handlers: handlers[1]: handler "alerts.x" has suppress or limit but no action to apply them to: set print, exec, webhook, slack or pagerduty`,
		},
		{
			cfg:  Config{Handlers: []Entry{{On: "alerts.>", Print: true}, {On: "alerts..x", Print: true}}},
			want: `handlers: handlers[1]: invalid pattern "alerts..x": empty token`,
		},
	}
	for _, tt := range tests {
		if _, err := NewRules(tt.cfg, Deps{}); err == nil || err.Error() != tt.want {
			t.Errorf("NewRules: %v, want %s", err, tt.want)
		}
	}
}

// TestRulesMountOnRouter: rules registered once on a router, under the
// widest pattern, still name their own entries.
func TestRulesMountOnRouter(t *testing.T) {
	t.Parallel()
	rules, err := NewRules(Config{Handlers: []Entry{
		{On: "alerts.disk.>", Name: "disk-critical", When: When{Severity: []string{"critical"}}, Print: true},
		{On: "alerts.>", Print: true},
	}}, Deps{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	r := processor.NewRouter()
	On(r, "terminator_detected", func(context.Context, stream.Alert) error { return nil })
	r.Handle("alerts.>", rules)
	for _, tt := range []struct{ subject, payload, want string }{
		{"alerts.terminator_detected", "x", "alerts.terminator_detected"},
		{"alerts.disk.sda", `{"severity":"critical"}`, "disk-critical"},
		{"alerts.disk.sda", `{"severity":"warning"}`, "alerts.>"},
	} {
		if _, got := r.Route(message(tt.subject, tt.payload)); got != tt.want {
			t.Errorf("Route(%s %s) = %q, want %q", tt.subject, tt.payload, got, tt.want)
		}
	}
}
