package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"time"
	"unicode/utf8"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// Templates over the alert, in one place: suppression keys, the per key of a
// limit and the fields of actions (exec argv and env, webhook url, headers
// and body, Slack text, PagerDuty dedup_key and source) are Go text/templates
// parsed here, with the same functions, the same checks and the same
// bounded rendering.

// TemplateData is what the templates of actions see: the alert's fields
// (.Name, .Summary, .Labels.host, .Timestamp, ...: see stream.Alert), the
// delivery attempt and the alert's page in the web console. A label or
// annotation the alert lacks renders as empty text.
type TemplateData struct {
	stream.Alert
	// Delivered is the delivery attempt: 1 the first time, 2 on the first
	// retry.
	Delivered int
	// ConsoleURL is the alert's page in the web console, when a public URL
	// is configured (reactor run --public-url); empty otherwise.
	ConsoleURL string
}

// newTemplateData is the data of m's alert a; consoleURL is the console's
// public URL, empty for none.
func newTemplateData(m *processor.Message, a stream.Alert, consoleURL string) TemplateData {
	return TemplateData{Alert: a, Delivered: max(m.Delivered(), 1), ConsoleURL: alertLink(consoleURL, m)}
}

// alertLink is the page of m's alert in the console at base, or "" without
// a base or a stream sequence.
func alertLink(base string, m *processor.Message) string {
	if base == "" || m.Sequence() == 0 {
		return ""
	}
	return strings.TrimRight(base, "/") + "/alerts/" + strconv.FormatUint(m.Sequence(), 10)
}

// Bounds of a rendered template: a key is hashed, a field of an action is
// one argument, variable, URL or header, a body is a request.
const (
	maxKeyLen   = 4 << 10
	maxFieldLen = 64 << 10
	maxBodyLen  = 1 << 20
)

// templateFuncs are the functions templates may call besides text/template's
// own (printf, index, len, eq, urlquery, ...).
var templateFuncs = template.FuncMap{
	"json":    jsonText,
	"default": defaultValue,
	"lower":   strings.ToLower,
	"upper":   strings.ToUpper,
	"join":    join,
	"trunc":   trunc,
}

// alertTemplate is one template over the alert, parsed and checked.
type alertTemplate struct {
	text string
	tmpl *template.Template // nil: no action in text, which renders as itself
	// labels and annotations are the names the template reads
	// (.Labels.host, index .Labels "host"), which the sample alert fills.
	labels, annotations []string
}

// parseTemplate parses text as the template called name. Its errors say
// what is wrong without repeating text, which may hold a secret expanded
// from the environment.
func parseTemplate(name, text string) (*alertTemplate, error) {
	t := &alertTemplate{text: text}
	if !strings.Contains(text, "{{") {
		return t, nil
	}
	tmpl, err := template.New(name).Option("missingkey=zero").Funcs(templateFuncs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("not a valid template: %s", templateError(name, err))
	}
	if err := checkRanges(tmpl.Tree.Root); err != nil {
		return nil, err
	}
	t.tmpl = tmpl
	walk(tmpl.Tree.Root, func(n parse.Node) {
		if field, name, ok := mapRead(n); ok {
			switch field {
			case "Labels":
				t.labels = append(t.labels, name)
			case "Annotations":
				t.annotations = append(t.annotations, name)
			}
		}
	})
	return t, nil
}

// render executes t on data, failing past max bytes.
func (t *alertTemplate) render(data any, max int) (string, error) {
	if t.tmpl == nil {
		if len(t.text) > max {
			return "", fmt.Errorf("longer than %d bytes", max)
		}
		return t.text, nil
	}
	b := &boundedBuffer{max: max}
	if err := t.tmpl.Execute(b, data); err != nil {
		var long *tooLongError
		if errors.As(err, &long) {
			return "", long
		}
		return "", errors.New(templateError(t.tmpl.Name(), err))
	}
	return b.String(), nil
}

// static reports whether t renders as its text whatever the alert.
func (t *alertTemplate) static() bool { return t.tmpl == nil }

// templateError is err without text/template's "template: name:" prefix.
func templateError(name string, err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "template: "+name+":")
	return strings.TrimSpace(msg)
}

// boundedBuffer fails writes past max bytes, which stops the template.
type boundedBuffer struct {
	bytes.Buffer
	max int
}

type tooLongError struct{ max int }

func (e *tooLongError) Error() string { return fmt.Sprintf("longer than %d bytes", e.max) }

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, &tooLongError{max: b.max}
	}
	return b.Buffer.Write(p)
}

// checkRanges keeps a template's rendering bounded by the alert: {{range}}
// only over a field (.Labels, .Annotations, $.Labels: Go templates also
// count to a number, from a literal, a variable or dot), and no
// {{template}} (which may call itself).
func checkRanges(n parse.Node) error {
	var err error
	walk(n, func(n parse.Node) {
		switch x := n.(type) {
		case *parse.TemplateNode:
			if err == nil {
				err = errors.New("{{template}} is not allowed")
			}
		case *parse.RangeNode:
			if err == nil && !overField(x.Pipe) {
				err = fmt.Errorf("range over %s: range over the alert's fields only, e.g. {{range $k, $v := .Labels}}", x.Pipe)
			}
		}
	})
	return err
}

// overField reports whether pipe is one field of the alert: .Labels or
// $.Labels.
func overField(pipe *parse.PipeNode) bool {
	if len(pipe.Cmds) != 1 || len(pipe.Cmds[0].Args) != 1 {
		return false
	}
	switch a := pipe.Cmds[0].Args[0].(type) {
	case *parse.FieldNode:
		return true
	case *parse.VariableNode:
		return len(a.Ident) > 1 && a.Ident[0] == "$"
	}
	return false
}

// walk calls fn on n and every node under it.
func walk(n parse.Node, fn func(parse.Node)) {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return
	}
	fn(n)
	switch x := n.(type) {
	case *parse.ListNode:
		for _, c := range x.Nodes {
			walk(c, fn)
		}
	case *parse.ActionNode:
		walk(x.Pipe, fn)
	case *parse.IfNode:
		walkBranch(&x.BranchNode, fn)
	case *parse.RangeNode:
		walkBranch(&x.BranchNode, fn)
	case *parse.WithNode:
		walkBranch(&x.BranchNode, fn)
	case *parse.PipeNode:
		for _, c := range x.Cmds {
			walk(c, fn)
		}
	case *parse.CommandNode:
		for _, a := range x.Args {
			walk(a, fn)
		}
	case *parse.ChainNode:
		walk(x.Node, fn)
	case *parse.TemplateNode:
		walk(x.Pipe, fn)
	}
}

func walkBranch(b *parse.BranchNode, fn func(parse.Node)) {
	walk(b.Pipe, fn)
	walk(b.List, fn)
	walk(b.ElseList, fn)
}

// mapRead recognises a read of one label or annotation: .Labels.host,
// $.Labels.host, .Alert.Labels.host, or index .Labels "host".
func mapRead(n parse.Node) (field, key string, ok bool) {
	var ident []string
	switch x := n.(type) {
	case *parse.FieldNode:
		ident = x.Ident
	case *parse.VariableNode:
		ident = x.Ident
	case *parse.CommandNode:
		if len(x.Args) != 3 {
			return "", "", false
		}
		fn, isIdent := x.Args[0].(*parse.IdentifierNode)
		s, isString := x.Args[2].(*parse.StringNode)
		if !isIdent || fn.Ident != "index" || !isString {
			return "", "", false
		}
		var inner []string
		switch m := x.Args[1].(type) {
		case *parse.FieldNode:
			inner = m.Ident
		case *parse.VariableNode:
			inner = m.Ident
		}
		if len(inner) == 0 {
			return "", "", false
		}
		last := inner[len(inner)-1]
		return last, s.Text, last == "Labels" || last == "Annotations"
	}
	for i := 0; i+1 < len(ident); i++ {
		if ident[i] == "Labels" || ident[i] == "Annotations" {
			return ident[i], ident[i+1], true
		}
	}
	return "", "", false
}

// The sample alerts templates render on when the config loads, so that a
// typo (.Lables), a wrong function call or a body that is not JSON shows
// then rather than on the first alert. The hostile one has quotes,
// backslashes, a newline, markup and non-ASCII text in every free-text
// field, as a real alert may: a JSON body that renders valid JSON with it
// escapes its values.
var sampleTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const hostileText = "sample \"quoted\" back\\slash\nnew line <b>&amp; ünïcødé 🚨"

func (t *alertTemplate) sampleAlert(hostile bool) stream.Alert {
	text := func(s string) string {
		if hostile {
			return s + " " + hostileText
		}
		return s
	}
	fill := func(names []string) map[string]string {
		m := map[string]string{"sample": text("sample-value")}
		for _, n := range names {
			m[n] = text("sample-" + n)
		}
		return m
	}
	name := "sample_alert"
	if hostile {
		name = `sample_"alert"\` // a subject token may hold quotes and backslashes
	}
	return stream.Alert{
		ID: text("sample-id"), Name: name, Subject: "alerts." + name,
		Severity: stream.SeverityWarning, Summary: text("sample summary"),
		Labels: fill(t.labels), Annotations: fill(t.annotations),
		Source: text("sample-source"), Timestamp: sampleTime, Status: stream.StatusFiring,
	}
}

// sampleData is the data an action's template renders on at load.
func (t *alertTemplate) sampleData(hostile bool) TemplateData {
	return TemplateData{Alert: t.sampleAlert(hostile), Delivered: 1, ConsoleURL: "https://reactor.example.com/alerts/1"}
}

// checkSample renders t on the sample alert, so that an error shows when the
// config loads.
func (t *alertTemplate) checkSample(data any, max int) (string, error) {
	out, err := t.render(data, max)
	if err != nil {
		return "", fmt.Errorf("fails on a sample alert: %w", err)
	}
	return out, nil
}

// renderJSON renders a template that must make a JSON document. On the
// hostile sample it tells the user how to escape values.
func (t *alertTemplate) renderJSON(data any, max int) ([]byte, error) {
	out, err := t.render(data, max)
	if err != nil {
		return nil, err
	}
	if err := checkJSON([]byte(out)); err != nil {
		return nil, err
	}
	return []byte(out), nil
}

func checkJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("not valid JSON: %v", err)
	}
	return nil
}

// checkJSONSample renders t on the hostile sample alert and checks that
// the result is JSON.
func (t *alertTemplate) checkJSONSample() error {
	if _, err := t.checkSample(t.sampleData(false), maxBodyLen); err != nil {
		return err
	}
	if _, err := t.renderJSON(t.sampleData(true), maxBodyLen); err != nil {
		return fmt.Errorf("%v on a sample alert whose text holds quotes, backslashes and a newline: write each value with json, e.g. {\"summary\": {{json .Summary}}}", err)
	}
	return nil
}

// jsonText is the template function json: v as a JSON literal ("db-3" with
// its quotes, an object for a map), without HTML escaping.
func jsonText(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// defaultValue is the template function default: v, or def when v is empty
// (an empty string, a missing label, zero, false, an empty map or list).
// Written as {{.Labels.team | default "ops"}}.
func defaultValue(def, v any) any {
	if empty(v) {
		return def
	}
	return v
}

func empty(v any) bool {
	r := reflect.ValueOf(v)
	if !r.IsValid() {
		return true
	}
	switch r.Kind() {
	case reflect.Map, reflect.Slice, reflect.Array, reflect.String:
		return r.Len() == 0
	}
	return r.IsZero()
}

// join is the template function join: the elements of a list joined with
// sep, or a map's pairs "k=v" sorted by key. Written as
// {{join ", " .Labels}}.
func join(sep string, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []string:
		return strings.Join(x, sep), nil
	case map[string]string:
		parts := make([]string, 0, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, k+"="+x[k])
		}
		return strings.Join(parts, sep), nil
	}
	r := reflect.ValueOf(v)
	if k := r.Kind(); k != reflect.Slice && k != reflect.Array {
		return "", fmt.Errorf("join: want a list or a map, got %T", v)
	}
	parts := make([]string, r.Len())
	for i := range parts {
		parts[i] = fmt.Sprint(r.Index(i).Interface())
	}
	return strings.Join(parts, sep), nil
}

// trunc is the template function trunc: s cut to its first n characters.
// Written as {{.Summary | trunc 100}}.
func trunc(n int, s string) (string, error) {
	if n < 0 {
		return "", fmt.Errorf("trunc: negative length %d", n)
	}
	if utf8.RuneCountInString(s) <= n {
		return s, nil
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j], nil
		}
		i++
	}
	return s, nil
}

// compiled is what an action parses from its fields once, on first use: the
// action types are built as struct literals, so they parse lazily.
type compiled[T any] struct {
	once sync.Once
	v    *T
	err  error
}

func (c *compiled[T]) get(compile func() (*T, error)) (*T, error) {
	c.once.Do(func() { c.v, c.err = compile() })
	return c.v, c.err
}
