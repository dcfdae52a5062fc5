package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultPattern is the pattern of the default route: with no handlers
// configured, every alert on it is printed.
const DefaultPattern = "alerts.>"

// Config is what users write in reactor.yaml, read by LoadConfig:
//
//	handlers:
//	  - on: "alerts.terminator_detected"   # NATS pattern: * is one token, > the rest
//	    print: true
//	    exec: {command: ["/usr/local/bin/page", "--team", "ops"], timeout: 30s, permanent_exit_codes: [2]}
//	    webhook: {url: "https://hooks.example.com/x", timeout: 10s, headers: {Authorization: "Bearer ${HOOK_TOKEN}"}}
//	  - on: "alerts.>"
//	    print: true
//	print: {format: text}   # or json
//
// A message goes to the one handler whose pattern matches its subject most
// specifically (see processor.Router), not the first in the file. The
// handler runs its actions in the order print, exec, webhook and stops at
// the first that fails; the message is then retried and every action runs
// again, so actions should be idempotent (exec sees REACTOR_DELIVERED, a
// webhook gets an Idempotency-Key).
//
// ${VAR} in a webhook's url and headers and in an exec's env is replaced by
// the environment variable VAR when the file is loaded, which keeps secrets
// out of the file; an unset variable is an error, and $${ stands for a
// literal ${. Durations are Go durations: "500ms", "30s", "2m".
//
// The zero Config prints every alert on DefaultPattern.
type Config struct {
	// Handlers are the routes. Defaults to one that prints every alert on
	// DefaultPattern.
	Handlers []Entry `yaml:"handlers"`
	// Print configures every print action.
	Print PrintConfig `yaml:"print"`
}

// Entry routes the alerts matching a pattern to one or more actions.
type Entry struct {
	// On is the subject pattern. Required.
	On string `yaml:"on"`
	// Print prints the alert (see Print).
	Print bool `yaml:"print"`
	// Exec runs a command (see Exec).
	Exec *ExecConfig `yaml:"exec"`
	// Webhook posts the alert (see Webhook).
	Webhook *WebhookConfig `yaml:"webhook"`

	line int // in the file it was read from; 0 if built in Go
}

// PrintConfig configures the print action of every entry.
type PrintConfig struct {
	// Format is "text" or "json". Defaults to "text".
	Format string `yaml:"format"`
}

// ExecConfig is an entry's exec action: the fields of Exec.
type ExecConfig struct {
	// Command is the program and its arguments, no shell. Required.
	Command []string `yaml:"command"`
	// Env adds variables to the command's environment; ${VAR} is expanded.
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
	// URL is the http(s) URL to POST to; ${VAR} is expanded. Required.
	URL string `yaml:"url"`
	// Headers are added to each request; ${VAR} in values is expanded.
	Headers map[string]string `yaml:"headers"`
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
		c.Handlers = []Entry{{On: DefaultPattern, Print: true}}
	}
	return c
}

// validate checks what the YAML decoder cannot: formats, patterns,
// duplicates, that every entry does something.
func (c Config) validate() error {
	if err := c.Print.validate(); err != nil {
		return err
	}
	first := make(map[string]int, len(c.Handlers))
	for i, e := range c.Handlers {
		if err := e.validate(); err != nil {
			return fmt.Errorf("%s: %w", e.where(i), err)
		}
		if j, ok := first[e.On]; ok {
			return fmt.Errorf("%s: duplicate handler for %q (first at %s)", e.where(i), e.On, c.Handlers[j].where(j))
		}
		first[e.On] = i
	}
	return nil
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
	if err := checkPattern(e.On); err != nil {
		return err
	}
	if !e.Print && e.Exec == nil && e.Webhook == nil {
		return fmt.Errorf("handler %q has no action: set print, exec or webhook", e.On)
	}
	if x := e.Exec; x != nil {
		ex := Exec{Command: x.Command, Timeout: x.Timeout}
		if err := ex.validate(); err != nil {
			return fmt.Errorf("handler %q: %w", e.On, err)
		}
	}
	if x := e.Webhook; x != nil {
		wh := Webhook{URL: x.URL, Headers: x.Headers, Timeout: x.Timeout}
		if err := wh.validate(); err != nil {
			return fmt.Errorf("handler %q: %w", e.On, err)
		}
	}
	return nil
}

// checkPattern mirrors processor.Router's rules, which panic on an invalid
// pattern: non-empty dot-separated tokens without white space, "*" and ">"
// only as whole tokens, ">" only last.
func checkPattern(p string) error {
	if strings.ContainsAny(p, " \t\r\n") {
		return fmt.Errorf("invalid pattern %q: contains white space", p)
	}
	tokens := strings.Split(p, ".")
	for i, tok := range tokens {
		switch {
		case tok == "":
			return fmt.Errorf("invalid pattern %q: empty token", p)
		case tok == ">" && i != len(tokens)-1:
			return fmt.Errorf("invalid pattern %q: \">\" must be the last token", p)
		case tok != "*" && tok != ">" && strings.ContainsAny(tok, "*>"):
			return fmt.Errorf("invalid pattern %q: wildcard inside token %q", p, tok)
		}
	}
	return nil
}

// expandEnv replaces ${VAR} in s with the environment variable VAR and $${
// with a literal ${. An unset variable is an error; the error never holds a
// value.
func expandEnv(s string) (string, error) {
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
