package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/reactor-alerts/reactor/processor"
)

// PatternDefault is the pattern of the default route: with no handlers
// configured, every alert on it is printed.
const PatternDefault = "alerts.>"

// Config is what users write in reactor.yaml, read by LoadConfig:
//
//	handlers:
//	  - on: "alerts.disk.>"                # NATS pattern: * is one token, > the rest
//	    when:                              # every listed condition must hold
//	      severity: [critical, error]      # a set; or ">=error": at least that level
//	      labels: {team: db}               # equality
//	      labels_match: {instance: "db-.*"}  # regular expression, anchored
//	      status: firing                   # firing | resolved; an alert without a status is firing
//	    suppress: {key: "{{.Labels.instance}}", for: 10m}  # Go template over the alert
//	    limit: {rate: 10/m, concurrent: 1, per: "{{.Labels.host}}"}  # one run at once per host, group-wide
//	    exec: {command: ["/usr/local/bin/restart", "{{.Labels.service}}"], timeout: 30s, permanent_exit_codes: [2]}
//	  - on: "alerts.terminator_detected"
//	    print: true
//	    webhook: {url: "https://hooks.example.com/x", timeout: 10s, headers: {Authorization: "Bearer ${HOOK_TOKEN}"},
//	              body: '{"text": {{json .Summary}}}'}
//	    slack: {webhook_url: "${SLACK_WEBHOOK}"}
//	    pagerduty: {routing_key: "${PD_KEY}"}
//	  - on: "alerts.>"
//	    when: {severity: [info]}           # no action: drop on purpose (filtered)
//	  - on: "alerts.>"
//	    print: true
//	print: {format: text}   # or json
//	runs: {output: 16KiB, max_bytes: 256MiB}   # what the run records keep (see RunsConfig)
//
// An alert is taken by the first entry, in evaluation order, whose pattern
// matches its subject and whose conditions all hold: entries with the most
// specific pattern first (see processor.Router: a literal token beats "*",
// which beats ">", comparing from the left), and entries of one pattern in
// the order of the file. An alert no entry takes is dead-lettered with the
// reason no_handler. An entry with no action takes the alert and drops it on
// purpose: it is acknowledged and counted as filtered.
//
// The entry that takes an alert runs its actions in the order print, exec,
// webhook, slack, pagerduty and stops at the first that fails; the alert is
// then retried and every action runs again, so actions should be
// idempotent (exec sees REACTOR_DELIVERED, a webhook gets an
// Idempotency-Key, PagerDuty deduplicates by dedup_key). Exec's command and
// env, a webhook's url, headers and body, Slack's text and PagerDuty's
// dedup_key and source are Go templates over the alert (see TemplateData
// for what they see, and Exec and Webhook for how they are checked).
// Before that,
// suppress acknowledges a repeat of an alert that acted within the window
// (see SuppressConfig), and limit makes the alert wait while the entry's
// rate or concurrency is used up (see LimitConfig).
//
// ${VAR} in a webhook's url and headers, in an exec's env, in Slack's
// webhook_url and in PagerDuty's routing_key and url is replaced by the
// environment variable VAR when the file is loaded, which keeps secrets
// out of the file (before a template is parsed: the value is taken as
// written); an unset variable is an error, and $${ stands for a literal
// ${. Durations are Go durations: "500ms", "30s", "2m".
//
// The zero Config prints every alert on PatternDefault.
type Config struct {
	// Handlers are the routes. Defaults to one that prints every alert on
	// PatternDefault.
	Handlers []Entry `yaml:"handlers"`
	// Print configures every print action.
	Print PrintConfig `yaml:"print"`
	// Runs says what the records of the actions' runs keep (see Run).
	Runs RunsConfig `yaml:"runs"`
}

// Entry routes the alerts matching a pattern and its conditions to its
// actions. With no action it drops them on purpose (filtered).
type Entry struct {
	// On is the subject pattern. Required.
	On string `yaml:"on"`
	// Name names the entry in counts, logs and `reactor rules explain`.
	// Defaults to On, with "#2", "#3"... appended for the second and later
	// entries of one pattern.
	Name string `yaml:"name"`
	// When holds the conditions an alert must meet besides its subject.
	// Defaults to none: every alert on On.
	When When `yaml:"when"`
	// Suppress acknowledges repeats without running the actions. Defaults
	// to none.
	Suppress *SuppressConfig `yaml:"suppress"`
	// Limit bounds the rate and concurrency of the entry's actions.
	// Defaults to none.
	Limit *LimitConfig `yaml:"limit"`
	// Print prints the alert (see Print).
	Print bool `yaml:"print"`
	// Exec runs a command (see Exec).
	Exec *ExecConfig `yaml:"exec"`
	// Webhook posts the alert (see Webhook).
	Webhook *WebhookConfig `yaml:"webhook"`
	// Slack posts a message to a Slack incoming webhook (see Slack).
	Slack *SlackConfig `yaml:"slack"`
	// PagerDuty triggers and resolves a PagerDuty incident (see PagerDuty).
	PagerDuty *PagerDutyConfig `yaml:"pagerduty"`

	line int // in the file it was read from; 0 if built in Go
}

// When is an entry's conditions; each one set must hold. The zero When
// matches every alert.
type When struct {
	// Severity is the set of severities accepted. Defaults to any.
	Severity []string `yaml:"severity"`
	// MinSeverity accepts alerts at least this severe (info < warning <
	// error < critical); in YAML, severity: ">=error". Defaults to any;
	// exclusive with Severity.
	MinSeverity string `yaml:"-"`
	// Labels must all be equal to the alert's. A missing label is the
	// empty string, as in Alertmanager. Defaults to none.
	Labels map[string]string `yaml:"labels"`
	// LabelsMatch are regular expressions (RE2 syntax) that must match
	// the whole value of each label ("db-.*" matches "db-3", not
	// "old-db-3"). Defaults to none.
	LabelsMatch map[string]string `yaml:"labels_match"`
	// Status is StatusFiring or StatusResolved; an alert without a status
	// is firing. Defaults to any.
	Status string `yaml:"status"`
}

// IsZero reports whether w has no condition.
func (w When) IsZero() bool {
	return len(w.Severity) == 0 && w.MinSeverity == "" && len(w.Labels) == 0 && len(w.LabelsMatch) == 0 && w.Status == ""
}

// SuppressConfig is an entry's repeat suppression. The first firing alert
// with a key runs the actions and opens a window of For; the repeats within
// the window are acknowledged without running them and counted as
// suppressed. A resolved alert with the key ends the window, so the next
// firing one acts again; an action that fails does not count as having
// acted. The windows live in the SuppressBucket key-value bucket, shared by
// every process of the group and kept across restarts.
type SuppressConfig struct {
	// Key is a Go text/template over the Alert (.Subject, .Name,
	// .Severity, .Labels.instance, ...): alerts with the same key are
	// repeats. Defaults to SuppressKeyDefault: the subject and every label.
	Key string `yaml:"key"`
	// For is the window. Required, at least MinSuppressFor.
	For time.Duration `yaml:"for"`
}

// LimitConfig bounds how often an entry's actions run, in each process, and
// how many runs at once, across every process of the group (per key with
// Per). An alert over a limit waits: it is redelivered after the limiter's
// delay (processor.Defer), never failed, dropped or dead-lettered for it,
// and counted as limited.
type LimitConfig struct {
	// Rate is at most N runs per period: "10/s", "10/m", "100/h" or
	// "5/30s". Defaults to no rate limit.
	Rate string `yaml:"rate"`
	// Burst is how many runs may start at once before Rate spaces them.
	// Defaults to 1: runs at least period/N apart.
	Burst int `yaml:"burst"`
	// Concurrent is the most runs at once over every process of the group
	// (each holds a slot in LeaseBucket while it runs). Defaults to no
	// limit (the workers bound it).
	Concurrent int `yaml:"concurrent"`
	// Per is a Go template over the Alert, like a suppression key: the
	// concurrent limit holds for each key apart ("{{.Labels.host}}": at
	// most Concurrent runs at once on each host). Defaults to one key for
	// the entry.
	Per string `yaml:"per"`
	// Lease is how long the slot of a run whose process died (killed, its
	// host lost) stays taken: the running process renews it every third of
	// it. Whole seconds, at least MinLease. Defaults to LeaseDefault (15s).
	Lease time.Duration `yaml:"lease"`
}

// PrintConfig configures the print action of every entry.
type PrintConfig struct {
	// Format is "text" or "json". Defaults to "text".
	Format string `yaml:"format"`
}

// ExecConfig is an entry's exec action: the fields of Exec.
type ExecConfig struct {
	// Command is the program and its arguments, no shell; each a template
	// over the alert (see TemplateData). Required.
	Command []string `yaml:"command"`
	// Env adds variables to the command's environment; ${VAR} is expanded,
	// and each value is a template.
	Env map[string]string `yaml:"env"`
	// Dir is the working directory. Defaults to reactor's.
	Dir string `yaml:"dir"`
	// Timeout bounds each run. Defaults to 30s.
	Timeout time.Duration `yaml:"timeout"`
	// PermanentExitCodes dead-letter the alert at once. Defaults to none.
	PermanentExitCodes []int `yaml:"permanent_exit_codes"`
}

// WebhookConfig is an entry's webhook action: the fields of Webhook.
type WebhookConfig struct {
	// URL is the http(s) URL to POST to, a template; ${VAR} is expanded.
	// Required.
	URL string `yaml:"url"`
	// Headers are added to each request; ${VAR} in values is expanded, and
	// each value is a template.
	Headers map[string]string `yaml:"headers"`
	// Body is the request's body, a template (JSON unless Headers sets
	// another Content-Type). Defaults to the alert as JSON.
	Body string `yaml:"body"`

	urlSecrets []string // what ${VAR} put in URL: redacted like header values
	// Timeout bounds each request. Defaults to 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// LoadConfig reads and checks the YAML file at path. Errors start with the
// path and the line: `reactor.yaml: line 4: unknown field "comand" in exec`.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses and checks a YAML config, expanding ${VAR} from the
// environment. Empty input is the zero Config. Errors start with the line.
func ParseConfig(data []byte) (Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	// Config.UnmarshalYAML checks the fields itself, for better messages;
	// KnownFields is the belt to its braces.
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return Config{}, yamlError(err)
		}
		return Config{}, fmt.Errorf("line %d: more than one YAML document", extra.Line)
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// yamlError drops yaml.v3's "yaml: " prefix, so that messages read
// "line 3: ..." like ours.
func yamlError(err error) error {
	msg := err.Error()
	if !strings.HasPrefix(msg, "yaml: ") {
		return err
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	return &wrapError{msg: msg, err: err}
}

type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }

// withDefaults returns c with the default route if it has none.
func (c Config) withDefaults() Config {
	if len(c.Handlers) == 0 {
		c.Handlers = []Entry{{On: PatternDefault, Print: true}}
	}
	return c
}

// validate checks what the YAML decoder cannot: formats, patterns,
// conditions, names, and that no entry hides behind another.
func (c Config) validate() error {
	if err := c.Print.validate(); err != nil {
		return err
	}
	if err := c.Runs.validate(); err != nil {
		return err
	}
	names := entryNames(c.Handlers)
	catchAll := make(map[string]int, len(c.Handlers)) // pattern -> entry without conditions
	byName := make(map[string]int, len(c.Handlers))
	for i, e := range c.Handlers {
		if err := e.validate(); err != nil {
			return fmt.Errorf("%s: %w", e.where(i), err)
		}
		if j, ok := catchAll[e.On]; ok {
			return fmt.Errorf("%s: handler %q is never reached: the entry at %s takes every alert on %q first (give it conditions, or merge the two)", e.where(i), e.On, c.Handlers[j].where(j), e.On)
		}
		if e.When.IsZero() {
			catchAll[e.On] = i
		}
		if j, ok := byName[names[i]]; ok {
			return fmt.Errorf("%s: name %q is taken by the entry at %s", e.where(i), names[i], c.Handlers[j].where(j))
		}
		byName[names[i]] = i
	}
	return nil
}

// entryNames returns each entry's name: its Name, or its pattern with "#k"
// for the k-th entry (k >= 2) of that pattern.
func entryNames(es []Entry) []string {
	out := make([]string, len(es))
	seen := make(map[string]int, len(es))
	for i, e := range es {
		seen[e.On]++
		switch {
		case e.Name != "":
			out[i] = e.Name
		case seen[e.On] == 1:
			out[i] = e.On
		default:
			out[i] = fmt.Sprintf("%s#%d", e.On, seen[e.On])
		}
	}
	return out
}

func (p PrintConfig) validate() error {
	switch p.Format {
	case "", FormatText, FormatJSON:
		return nil
	}
	return fmt.Errorf("print.format %q: want %q or %q", p.Format, FormatText, FormatJSON)
}

// where locates entry i for an error: its line, or its index.
func (e Entry) where(i int) string {
	if e.line > 0 {
		return fmt.Sprintf("line %d", e.line)
	}
	return fmt.Sprintf("handlers[%d]", i)
}

func (e Entry) validate() error {
	if e.On == "" {
		return errors.New(`handler without "on": give the subject pattern it handles`)
	}
	if _, err := processor.ParsePattern(e.On); err != nil {
		return err
	}
	if strings.ContainsAny(e.Name, "\n\r\t") || (e.Name != "" && strings.TrimSpace(e.Name) == "") {
		return fmt.Errorf("handler %q: name %q: want printable text", e.On, e.Name)
	}
	if err := e.When.validate(); err != nil {
		return fmt.Errorf("handler %q: when: %w", e.On, err)
	}
	if x := e.Suppress; x != nil {
		if _, err := x.parse(); err != nil {
			return fmt.Errorf("handler %q: suppress: %w", e.On, err)
		}
	}
	if x := e.Limit; x != nil {
		if _, err := x.parse(); err != nil {
			return fmt.Errorf("handler %q: limit: %w", e.On, err)
		}
	}
	if !e.hasAction() && (e.Suppress != nil || e.Limit != nil) {
		return fmt.Errorf("handler %q has suppress or limit but no action to apply them to: set print, exec, webhook, slack or pagerduty", e.On)
	}
	if x := e.Exec; x != nil {
		ex := Exec{Command: x.Command, Env: x.Env, Timeout: x.Timeout}
		if err := ex.validate(); err != nil {
			return fmt.Errorf("handler %q: %w", e.On, err)
		}
	}
	if x := e.Webhook; x != nil {
		wh := Webhook{URL: x.URL, Headers: x.Headers, Body: x.Body, Timeout: x.Timeout}
		if err := wh.validate(); err != nil {
			return fmt.Errorf("handler %q: %w", e.On, err)
		}
	}
	return e.validateNotifiers()
}

func (e Entry) hasAction() bool {
	return e.Print || e.Exec != nil || e.Webhook != nil || e.Slack != nil || e.PagerDuty != nil
}

// expandEnv replaces ${VAR} in s with the environment variable VAR and $${
// with a literal ${. An unset variable is an error; the error never holds a
// value.
func expandEnv(s string) (string, error) { return expand(s, nil) }

// expandTemplateEnv is expandEnv for a template: a value holding "{{" goes
// in as a quoted literal, {{"..."}}, so that a secret is never parsed as a
// template.
func expandTemplateEnv(s string) (string, error) { return expand(s, quoteTemplate) }

// quoteTemplate makes v a template that renders v.
func quoteTemplate(v string) string {
	if !strings.Contains(v, "{{") {
		return v
	}
	return "{{" + strconv.Quote(v) + "}}"
}

func expand(s string, quote func(string) string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1] + "${")
			s = s[i+2:]
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", errors.New(`unterminated "${": write ${VAR}, or $${ for a literal "${"`)
		}
		name := s[i+2 : i+2+end]
		if !validEnvName(name) {
			return "", fmt.Errorf("invalid variable name %q in ${...}", name)
		}
		v, ok := os.LookupEnv(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		if quote != nil {
			v = quote(v)
		}
		b.WriteString(s[:i] + v)
		s = s[i+2+end+1:]
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		letter := c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}
