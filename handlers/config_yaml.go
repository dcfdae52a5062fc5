package handlers

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/xrash/smetrics"
	"gopkg.in/yaml.v3"
)

// The config is decoded by walking yaml.v3's nodes rather than by
// reflection: every error then names the line, the field and what was
// expected (`line 4: unknown field "comand" in exec (did you mean
// "command"?)`), and values that need the environment are expanded where
// their line is known.

// UnmarshalYAML decodes the top level of a config file.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	return decodeMapping(n, "the config", fields{
		"handlers": func(v *yaml.Node) error {
			if v.Kind != yaml.SequenceNode {
				return typeError(v, "handlers", "a list of handlers")
			}
			c.Handlers = make([]Entry, len(v.Content))
			for i, item := range v.Content {
				if err := c.Handlers[i].UnmarshalYAML(item); err != nil {
					return err
				}
			}
			return nil
		},
		"runs": func(v *yaml.Node) error {
			if err := decodeMapping(v, "runs", fields{
				"output":    size(&c.Runs.Output, "runs.output"),
				"max_bytes": size(&c.Runs.MaxBytes, "runs.max_bytes"),
				"max_age":   duration(&c.Runs.MaxAge, "runs.max_age"),
			}); err != nil {
				return err
			}
			if err := c.Runs.validate(); err != nil {
				return lineErrorf(v, "%v", err)
			}
			return nil
		},
		"print": func(v *yaml.Node) error {
			return decodeMapping(v, "print", fields{"format": func(v *yaml.Node) error {
				if err := str(&c.Print.Format, "print.format")(v); err != nil {
					return err
				}
				if err := c.Print.validate(); err != nil {
					return lineErrorf(v, "%v", err)
				}
				return nil
			}})
		},
	})
}

// UnmarshalYAML decodes one entry of handlers.
func (e *Entry) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	e.line = n.Line
	return decodeMapping(n, "handler", fields{
		"on":   str(&e.On, "on"),
		"name": str(&e.Name, "name"),
		"when": e.When.decode,
		"suppress": func(v *yaml.Node) error {
			e.Suppress = new(SuppressConfig)
			return e.Suppress.UnmarshalYAML(v)
		},
		"limit": func(v *yaml.Node) error {
			e.Limit = new(LimitConfig)
			return e.Limit.UnmarshalYAML(v)
		},
		"print": boolean(&e.Print, "print"),
		"exec": func(v *yaml.Node) error {
			e.Exec = new(ExecConfig)
			return e.Exec.UnmarshalYAML(v)
		},
		"webhook": func(v *yaml.Node) error {
			e.Webhook = new(WebhookConfig)
			return e.Webhook.UnmarshalYAML(v)
		},
		"slack": func(v *yaml.Node) error {
			e.Slack = new(SlackConfig)
			return e.Slack.UnmarshalYAML(v)
		},
		"pagerduty": func(v *yaml.Node) error {
			e.PagerDuty = new(PagerDutyConfig)
			return e.PagerDuty.UnmarshalYAML(v)
		},
	})
}

// decode decodes an entry's conditions, checking each where its line is
// known.
func (w *When) decode(n *yaml.Node) error {
	return decodeMapping(n, "when", fields{
		"severity": func(v *yaml.Node) error {
			if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
				if min, ok := strings.CutPrefix(v.Value, minSeverityPrefix); ok {
					w.MinSeverity = strings.TrimSpace(min)
				} else {
					w.Severity = []string{v.Value}
				}
			} else if err := strList(&w.Severity, "when.severity")(v); err != nil {
				return typeError(v, "when.severity", `a list of severities, one severity, or ">=" and one`)
			}
			return checkAt(v, When{Severity: w.Severity, MinSeverity: w.MinSeverity})
		},
		"labels": func(v *yaml.Node) error {
			if err := strMap(&w.Labels, "when.labels", nil, nil)(v); err != nil {
				return err
			}
			return checkAt(v, When{Labels: w.Labels})
		},
		"labels_match": func(v *yaml.Node) error {
			if err := strMap(&w.LabelsMatch, "when.labels_match", nil, nil)(v); err != nil {
				return err
			}
			return checkAt(v, When{LabelsMatch: w.LabelsMatch})
		},
		"status": func(v *yaml.Node) error {
			if err := str(&w.Status, "when.status")(v); err != nil {
				return err
			}
			return checkAt(v, When{Status: w.Status})
		},
	})
}

// checkAt checks one condition, for an error with its line.
func checkAt(v *yaml.Node, w When) error {
	if err := w.validate(); err != nil {
		return lineErrorf(v, "when: %v", err)
	}
	return nil
}

// UnmarshalYAML decodes an entry's suppress.
func (x *SuppressConfig) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	if err := decodeMapping(n, "suppress", fields{
		"key": str(&x.Key, "suppress.key"),
		"for": duration(&x.For, "suppress.for"),
	}); err != nil {
		return err
	}
	if _, err := x.parse(); err != nil {
		return lineErrorf(n, "suppress: %v", err)
	}
	return nil
}

// UnmarshalYAML decodes an entry's limit.
func (x *LimitConfig) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	if err := decodeMapping(n, "limit", fields{
		"rate":       str(&x.Rate, "limit.rate"),
		"burst":      integer(&x.Burst, "limit.burst"),
		"concurrent": integer(&x.Concurrent, "limit.concurrent"),
		"per":        str(&x.Per, "limit.per"),
		"lease":      duration(&x.Lease, "limit.lease"),
	}); err != nil {
		return err
	}
	if _, err := x.parse(); err != nil {
		return lineErrorf(n, "limit: %v", err)
	}
	return nil
}

// UnmarshalYAML decodes an exec action, expanding ${VAR} in env, and
// checks each template where its line is known.
func (x *ExecConfig) UnmarshalYAML(n *yaml.Node) error {
	return decodeMapping(n, "exec", fields{
		"command": func(v *yaml.Node) error {
			if v.Kind == yaml.ScalarNode {
				return lineErrorf(v, `exec.command must be a list: the program and its arguments, e.g. ["/usr/local/bin/page", "--team", "ops"] (no shell; use ["sh", "-c", "..."] for one)`)
			}
			if err := strList(&x.Command, "exec.command")(v); err != nil {
				return err
			}
			for i, item := range v.Content {
				if _, err := parseExecArg(i, x.Command[i]); err != nil {
					return lineErrorf(resolve(item), "exec.%v", err)
				}
			}
			return nil
		},
		"env": strMap(&x.Env, "exec.env", expandTemplateEnv, func(k, v string) error {
			if _, err := parseExecEnv(k, v); err != nil {
				return fmt.Errorf("exec.%w", err)
			}
			return nil
		}),
		"dir":                  str(&x.Dir, "exec.dir"),
		"timeout":              duration(&x.Timeout, "exec.timeout"),
		"permanent_exit_codes": intList(&x.PermanentExitCodes, "exec.permanent_exit_codes"),
	})
}

// UnmarshalYAML decodes a webhook action, expanding ${VAR} in url and
// headers, and checks each template where its line is known.
func (w *WebhookConfig) UnmarshalYAML(n *yaml.Node) error {
	var body *yaml.Node
	err := decodeMapping(n, "webhook", fields{
		"url": func(v *yaml.Node) error {
			if err := str(&w.URL, "webhook.url")(v); err != nil {
				return err
			}
			var values []string
			err := expandAt(v, &w.URL, "webhook.url", func(s string) (string, error) {
				return expand(s, func(val string) string {
					values = append(values, val)
					return quoteTemplate(val)
				})
			})
			if err != nil {
				return err
			}
			w.urlSecrets = urlSecrets(values)
			if _, err := parseURLTemplate(w.URL); err != nil {
				return lineErrorf(v, "%v", err) // never the URL: it may hold a secret
			}
			return nil
		},
		"headers": strMap(&w.Headers, "webhook.headers", expandTemplateEnv, func(k, v string) error {
			_, err := parseHeaderTemplate(k, v)
			return err
		}),
		"body": func(v *yaml.Node) error {
			body = v
			return str(&w.Body, "webhook.body")(v)
		},
		"timeout": duration(&w.Timeout, "webhook.timeout"),
	})
	if err != nil || body == nil {
		return err
	}
	// The body's check depends on the headers' Content-Type, which may
	// come after it.
	wh := Webhook{URL: w.URL, Headers: w.Headers, Body: w.Body}
	if _, err := wh.compile(); err != nil {
		return lineErrorf(body, "%v", err)
	}
	return nil
}

// fields maps the keys of a mapping to their decoders.
type fields map[string]func(v *yaml.Node) error

// decodeMapping decodes mapping n with one decoder per known key. Unknown
// and repeated keys are errors.
func decodeMapping(n *yaml.Node, what string, fs fields) error {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil // "print:" with nothing after it
	}
	if n.Kind != yaml.MappingNode {
		return typeError(n, what, "a mapping of fields")
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		dec, ok := fs[k.Value]
		if !ok {
			return lineErrorf(k, "unknown field %q in %s%s", k.Value, what, suggest(k.Value, fs))
		}
		if line, dup := seen[k.Value]; dup {
			return lineErrorf(k, "field %q set twice in %s (first at line %d)", k.Value, what, line)
		}
		seen[k.Value] = k.Line
		if err := dec(v); err != nil {
			return err
		}
	}
	return nil
}

func str(dst *string, what string) func(*yaml.Node) error {
	return func(v *yaml.Node) error {
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			return typeError(v, what, "a string")
		}
		*dst = v.Value
		return nil
	}
}

func boolean(dst *bool, what string) func(*yaml.Node) error {
	return func(v *yaml.Node) error {
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
			return typeError(v, what, "true or false")
		}
		return v.Decode(dst)
	}
}

func integer(dst *int, what string) func(*yaml.Node) error {
	return func(v *yaml.Node) error {
		n, err := strconv.Atoi(v.Value)
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || err != nil {
			return typeError(v, what, "an integer")
		}
		*dst = n
		return nil
	}
}

// size decodes a byte size: a number of bytes, or "16KiB", "1MB", "2 MiB".
func size(dst *int64, what string) func(*yaml.Node) error {
	return func(v *yaml.Node) error {
		n, err := humanize.ParseBytes(v.Value)
		if v.Kind != yaml.ScalarNode || err != nil || n == 0 || n > math.MaxInt64 {
			return lineErrorf(v, "%s: %q is not a size such as 16384, \"16KiB\" or \"256MiB\"", what, v.Value)
		}
		*dst = int64(n)
		return nil
	}
}

func duration(dst *time.Duration, what string) func(*yaml.Node) error {
	return func(v *yaml.Node) error {
		want := `a duration such as "30s" or "500ms"`
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			return typeError(v, what, want)
		}
		d, err := time.ParseDuration(v.Value)
		if err != nil || d <= 0 {
			return lineErrorf(v, "%s: %q is not %s", what, v.Value, "a positive duration such as \"30s\" or \"500ms\"")
		}
		*dst = d
		return nil
	}
}

func strList(dst *[]string, what string) func(*yaml.Node) error {
	return func(v *yaml.Node) error {
		if v.Kind != yaml.SequenceNode {
			return typeError(v, what, "a list of strings")
		}
		out := make([]string, len(v.Content))
		for i, item := range v.Content {
			if err := str(&out[i], fmt.Sprintf("%s[%d]", what, i))(resolve(item)); err != nil {
				return err
			}
		}
		*dst = out
		return nil
	}
}

func intList(dst *[]int, what string) func(*yaml.Node) error {
	return func(v *yaml.Node) error {
		if v.Kind != yaml.SequenceNode {
			return typeError(v, what, "a list of integers")
		}
		out := make([]int, len(v.Content))
		for i, item := range v.Content {
			item = resolve(item)
			n, err := strconv.Atoi(item.Value)
			if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!int" || err != nil {
				return typeError(item, fmt.Sprintf("%s[%d]", what, i), "an integer")
			}
			out[i] = n
		}
		*dst = out
		return nil
	}
}

// strMap decodes a mapping of strings; numbers and booleans are taken as
// written. With expand, ${VAR} in values is expanded; check, if not nil,
// checks each value where its line is known.
func strMap(dst *map[string]string, what string, expand func(string) (string, error), check func(k, v string) error) func(*yaml.Node) error {
	return func(v *yaml.Node) error {
		if v.Kind != yaml.MappingNode {
			return typeError(v, what, "a mapping of names to strings")
		}
		out := make(map[string]string, len(v.Content)/2)
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, val := resolve(v.Content[i]), resolve(v.Content[i+1])
			if k.Kind != yaml.ScalarNode || k.Value == "" {
				return typeError(k, what, "names that are non-empty strings")
			}
			if _, dup := out[k.Value]; dup {
				return lineErrorf(k, "%s: %q set twice", what, k.Value)
			}
			key := what + "." + k.Value
			if val.Kind != yaml.ScalarNode || val.ShortTag() == "!!null" {
				return typeError(val, key, "a string")
			}
			s := val.Value
			if expand != nil {
				if err := expandAt(val, &s, key, expand); err != nil {
					return err
				}
			}
			if check != nil {
				if err := check(k.Value, s); err != nil {
					return lineErrorf(val, "%v", err)
				}
			}
			out[k.Value] = s
		}
		*dst = out
		return nil
	}
}

// expandAt expands ${VAR} in *s, read from node v, in place, with expand.
func expandAt(v *yaml.Node, s *string, what string, expand func(string) (string, error)) error {
	x, err := expand(*s)
	if err != nil {
		return lineErrorf(v, "%s: %v", what, err)
	}
	*s = x
	return nil
}

// resolve follows aliases (*anchor) to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func typeError(v *yaml.Node, what, want string) error {
	return lineErrorf(v, "%s must be %s, got %s", what, want, describeNode(v))
}

// describeNode names what v holds, for an error: `"page" (a string)`.
func describeNode(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	kind := map[string]string{"!!str": "a string", "!!int": "an integer", "!!float": "a number",
		"!!bool": "a boolean", "!!null": "nothing"}[v.ShortTag()]
	if kind == "" {
		kind = v.ShortTag()
	}
	if v.ShortTag() == "!!null" {
		return kind
	}
	return fmt.Sprintf("%q (%s)", v.Value, kind)
}

func lineErrorf(v *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("line %d: "+format, append([]any{v.Line}, args...)...)
}

// suggest returns ` (did you mean "x"?)` for the known key nearest to key,
// if it is near enough to be a typo.
func suggest(key string, fs fields) string {
	best, bestDist := "", 3 // at most two edits away
	for k := range fs {
		if d := smetrics.WagnerFischer(key, k, 1, 1, 1); d < bestDist || (d == bestDist && k < best) {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}
