package handlers

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testdata = "../testdata/handlers"

func TestLoadExampleConfig(t *testing.T) {
	t.Setenv("HOOK_TOKEN", "tok-123")
	cfg, err := LoadConfig(filepath.Join(testdata, "reactor.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Handlers: []Entry{
			{
				On:    "alerts.terminator_detected",
				Print: true,
				Exec: &ExecConfig{
					Command:            []string{"/usr/local/bin/page", "--team", "ops"},
					Env:                map[string]string{"PAGER_REGION": "eu"},
					Timeout:            30 * time.Second,
					PermanentExitCodes: []int{2},
				},
				Webhook: &WebhookConfig{
					URL:     "https://hooks.example.com/reactor",
					Timeout: 10 * time.Second,
					Headers: map[string]string{"Authorization": "Bearer tok-123"},
				},
				line: 26,
			},
			{On: "alerts.disk.*", Exec: &ExecConfig{Command: []string{"sh", "-c", `/opt/ops/cleanup.sh "$REACTOR_ALERT_NAME"`}}, line: 47},
			{On: "alerts.>", Print: true, line: 52},
		},
		Print: PrintConfig{Format: FormatText},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config:\n got %s\nwant %s", dump(cfg), dump(want))
	}
}

func dump(c Config) string {
	var b strings.Builder
	for _, e := range c.Handlers {
		fmt.Fprintf(&b, "\n  %+v exec=%+v webhook=%+v", e, e.Exec, e.Webhook)
	}
	fmt.Fprintf(&b, "\n  print=%+v", c.Print)
	return b.String()
}

func TestLoadConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want string // after "<path>: "
	}{
		{"bad_unknown_field.yaml", `line 4: unknown field "comand" in exec (did you mean "command"?)`},
		{"bad_top_level.yaml", `line 1: unknown field "handler" in the config (did you mean "handlers"?)`},
		{"bad_pattern.yaml", `line 2: invalid pattern "alerts.>.disk": ">" must be the last token`},
		{"bad_duplicate.yaml", `line 7: handler "alerts.>" is never reached: the entry at line 3 takes every alert on "alerts.>" first (give it conditions, or merge the two)`},
		{"bad_duration.yaml", `line 5: exec.timeout must be a duration such as "30s" or "500ms", got "30" (an integer)`},
		{"bad_command_string.yaml", `line 4: exec.command must be a list: the program and its arguments, e.g. ["/usr/local/bin/page", "--team", "ops"] (no shell; use ["sh", "-c", "..."] for one)`},
		{"bad_exit_codes.yaml", `line 5: exec.permanent_exit_codes[1] must be an integer, got "three" (a string)`},
		{"bad_syntax.yaml", `line 2: mapping values are not allowed in this context`},
		{"bad_format.yaml", `line 5: print.format "xml": want "text" or "json"`},
		{"bad_webhook_url.yaml", `line 4: webhook: URL must be an absolute http:// or https:// URL`},
		{"bad_print_type.yaml", `line 3: print must be true or false, got "yes" (a string)`},
		{"bad_unset_env.yaml", `line 6: webhook.headers.Authorization: environment variable REACTOR_TEST_UNSET_TOKEN is not set`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(testdata, tt.file)
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatal("no error")
			}
			if want := path + ": " + tt.want; err.Error() != want {
				t.Errorf("error:\n got %s\nwant %s", err, want)
			}
		})
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	t.Parallel()
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("error %v, want one naming the file", err)
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		yaml    string
		want    Config
		wantErr string
	}{
		{name: "empty", yaml: ""},
		{name: "comments only", yaml: "# nothing yet\n"},
		{name: "print format only", yaml: "print: {format: json}\n", want: Config{Print: PrintConfig{Format: "json"}}},
		{
			name:    "aliases",
			yaml:    "hook: &hook {url: \"https://h.example/x\"}\nhandlers:\n  - {on: a.b, webhook: *hook}\n",
			wantErr: `line 1: unknown field "hook" in the config`,
		},
		{
			name: "anchor inside the handlers",
			yaml: "handlers:\n  - {on: a.b, webhook: &hook {url: \"https://h.example/x\"}}\n  - {on: a.c, webhook: *hook}\n",
			want: Config{Handlers: []Entry{
				{On: "a.b", Webhook: &WebhookConfig{URL: "https://h.example/x"}, line: 2},
				{On: "a.c", Webhook: &WebhookConfig{URL: "https://h.example/x"}, line: 3},
			}},
		},
		{name: "two documents", yaml: "handlers: []\n---\nhandlers: []\n", wantErr: "line 2: more than one YAML document"},
		{name: "handlers not a list", yaml: "handlers: {on: x}\n", wantErr: `line 1: handlers must be a list of handlers, got a mapping`},
		{name: "entry not a mapping", yaml: "handlers:\n  - alerts.x\n", wantErr: `line 2: handler must be a mapping of fields, got "alerts.x" (a string)`},
		{name: "field twice", yaml: "handlers:\n  - on: a\n    print: true\n    print: false\n", wantErr: `line 4: field "print" set twice in handler (first at line 3)`},
		{name: "no on", yaml: "handlers:\n  - print: true\n", wantErr: `line 2: handler without "on": give the subject pattern it handles`},
		{name: "on is a bool", yaml: "handlers:\n  - on: true\n    print: true\n", wantErr: `line 2: on must be a string, got "true" (a boolean)`},
		{name: "empty exec", yaml: "handlers:\n  - on: a\n    exec:\n", wantErr: `line 2: handler "a": exec: command is required`},
		{name: "negative duration", yaml: "handlers:\n  - on: a\n    webhook: {url: \"http://h/\", timeout: -1s}\n", wantErr: `line 3: webhook.timeout: "-1s" is not a positive duration`},
		{name: "unknown webhook field", yaml: "handlers:\n  - on: a\n    webhook: {url: \"http://h/\", header: {}}\n", wantErr: `line 3: unknown field "header" in webhook (did you mean "headers"?)`},
		{name: "no suggestion when far", yaml: "handlers:\n  - on: a\n    print: true\n    retries: 3\n", wantErr: `line 4: unknown field "retries" in handler` + "\x00"},
		{name: "wildcard in token", yaml: "handlers:\n  - on: alerts.disk*\n    print: true\n", wantErr: `line 2: invalid pattern "alerts.disk*": wildcard inside token "disk*"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseConfig([]byte(tt.yaml))
			if tt.wantErr != "" {
				exact := strings.HasSuffix(tt.wantErr, "\x00")
				want := strings.TrimSuffix(tt.wantErr, "\x00")
				if err == nil || !strings.HasPrefix(err.Error(), want) || (exact && err.Error() != want) {
					t.Errorf("error:\n got %v\nwant %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("config:\n got %s\nwant %s", dump(got), dump(tt.want))
			}
		})
	}
}

func TestParseConfigExpandsEnv(t *testing.T) {
	t.Setenv("HOOK_HOST", "hooks.example.com")
	t.Setenv("HOOK_TOKEN", "s3cret")
	t.Setenv("EMPTY", "")
	cfg, err := ParseConfig([]byte(`
handlers:
  - on: "alerts.>"
    exec:
      command: ["page", "${HOOK_TOKEN}"]   # not expanded: only env is
      env: {TOKEN: "${HOOK_TOKEN}", LITERAL: "$${HOOK_TOKEN}", PLAIN: "$HOOK_TOKEN", BLANK: "x${EMPTY}y"}
    webhook:
      url: "https://${HOOK_HOST}/x?k=${HOOK_TOKEN}"
      headers: {Authorization: "Bearer ${HOOK_TOKEN}", X-Count: 5}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Handlers[0]
	if want := []string{"page", "${HOOK_TOKEN}"}; !reflect.DeepEqual(e.Exec.Command, want) {
		t.Errorf("command = %q, want %q", e.Exec.Command, want)
	}
	wantEnv := map[string]string{"TOKEN": "s3cret", "LITERAL": "${HOOK_TOKEN}", "PLAIN": "$HOOK_TOKEN", "BLANK": "xy"}
	if !reflect.DeepEqual(e.Exec.Env, wantEnv) {
		t.Errorf("env = %q, want %q", e.Exec.Env, wantEnv)
	}
	if want := "https://hooks.example.com/x?k=s3cret"; e.Webhook.URL != want {
		t.Errorf("url = %q, want %q", e.Webhook.URL, want)
	}
	wantHeaders := map[string]string{"Authorization": "Bearer s3cret", "X-Count": "5"}
	if !reflect.DeepEqual(e.Webhook.Headers, wantHeaders) {
		t.Errorf("headers = %q, want %q", e.Webhook.Headers, wantHeaders)
	}
}

func TestExpandEnvErrors(t *testing.T) {
	t.Setenv("SET", "s3cret")
	for in, want := range map[string]string{
		"${SET":                      `unterminated "${"`,
		"${}":                        `invalid variable name ""`,
		"${1X}":                      `invalid variable name "1X"`,
		"${A-B}":                     `invalid variable name "A-B"`,
		"${SET}${NOT_SET_REACTOR_X}": "environment variable NOT_SET_REACTOR_X is not set",
	} {
		_, err := expandEnv(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("expandEnv(%q) = %v, want %q", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("expandEnv(%q) error reveals a value: %v", in, err)
		}
	}
}

func TestConfigValidateInGo(t *testing.T) {
	t.Parallel()
	err := Config{Handlers: []Entry{
		{On: "alerts.>", Print: true},
		{On: "alerts.>", Webhook: &WebhookConfig{URL: "https://h.example/x"}},
	}}.validate()
	if want := `handlers[1]: handler "alerts.>" is never reached: the entry at handlers[0] takes every alert on "alerts.>" first (give it conditions, or merge the two)`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	err = Config{Handlers: []Entry{{On: "a", Exec: &ExecConfig{Command: []string{"x"}, Timeout: -time.Second}}}}.validate()
	if want := `handlers[0]: handler "a": exec: negative timeout -1s`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	if err := (Config{}).validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}
