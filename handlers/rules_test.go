package handlers

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

func TestConditions(t *testing.T) {
	t.Parallel()
	db3 := map[string]string{"team": "db", "instance": "db-3"}
	tests := []struct {
		name  string
		when  When
		alert stream.Alert
		want  bool
	}{
		{"no condition", When{}, stream.Alert{Severity: stream.SeverityInfo}, true},
		{"severity in set", When{Severity: []string{"critical", "error"}}, stream.Alert{Severity: "error"}, true},
		{"severity not in set", When{Severity: []string{"critical", "error"}}, stream.Alert{Severity: "warning"}, false},
		{"at least error: critical", When{MinSeverity: "error"}, stream.Alert{Severity: "critical"}, true},
		{"at least error: error", When{MinSeverity: "error"}, stream.Alert{Severity: "error"}, true},
		{"at least error: warning", When{MinSeverity: "error"}, stream.Alert{Severity: "warning"}, false},
		{"label equal", When{Labels: map[string]string{"team": "db"}}, stream.Alert{Labels: db3}, true},
		{"label differs", When{Labels: map[string]string{"team": "web"}}, stream.Alert{Labels: db3}, false},
		{"label missing", When{Labels: map[string]string{"zone": "a"}}, stream.Alert{Labels: db3}, false},
		{"label equal to empty matches missing", When{Labels: map[string]string{"zone": ""}}, stream.Alert{Labels: db3}, true},
		{"every label must hold", When{Labels: map[string]string{"team": "db", "zone": "a"}}, stream.Alert{Labels: db3}, false},
		{"regexp matches", When{LabelsMatch: map[string]string{"instance": "db-.*"}}, stream.Alert{Labels: db3}, true},
		{"regexp anchored at the start", When{LabelsMatch: map[string]string{"instance": "b-3"}}, stream.Alert{Labels: db3}, false},
		{"regexp anchored at the end", When{LabelsMatch: map[string]string{"instance": "db-"}}, stream.Alert{Labels: db3}, false},
		{"regexp alternation is anchored as a whole", When{LabelsMatch: map[string]string{"instance": "x|db-3"}}, stream.Alert{Labels: db3}, true},
		{"regexp on a missing label", When{LabelsMatch: map[string]string{"zone": ".+"}}, stream.Alert{Labels: db3}, false},
		{"status firing, alert without status", When{Status: stream.StatusFiring}, stream.Alert{}, true},
		{"status firing, alert firing", When{Status: stream.StatusFiring}, stream.Alert{Status: stream.StatusFiring}, true},
		{"status firing, alert resolved", When{Status: stream.StatusFiring}, stream.Alert{Status: stream.StatusResolved}, false},
		{"status resolved, alert without status", When{Status: stream.StatusResolved}, stream.Alert{}, false},
		{"status resolved, alert resolved", When{Status: stream.StatusResolved}, stream.Alert{Status: stream.StatusResolved}, true},
		{"all hold", When{Severity: []string{"critical"}, Labels: map[string]string{"team": "db"}, LabelsMatch: map[string]string{"instance": "db-[0-9]+"}, Status: stream.StatusFiring},
			stream.Alert{Severity: "critical", Labels: db3}, true},
		{"one fails", When{Severity: []string{"critical"}, Labels: map[string]string{"team": "db"}, LabelsMatch: map[string]string{"instance": "db-[0-9]+"}, Status: stream.StatusFiring},
			stream.Alert{Severity: "critical", Labels: db3, Status: stream.StatusResolved}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := tt.when.compile()
			if err != nil {
				t.Fatal(err)
			}
			if got := c.match(tt.alert); got != tt.want {
				t.Errorf("match = %v, want %v", got, tt.want)
			}
			// explain must agree with match.
			all := true
			for _, ch := range c.checks(tt.alert) {
				all = all && ch.OK
			}
			if all != tt.want {
				t.Errorf("checks say %v, match %v: %+v", all, tt.want, c.checks(tt.alert))
			}
		})
	}
}

func TestWhenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		when When
		want string
	}{
		{When{Severity: []string{"urgent"}}, `severity "urgent": want info, warning, error or critical`},
		{When{Severity: []string{"critical"}, MinSeverity: "error"}, `severity: give a set or a minimum (">=error"), not both`},
		{When{MinSeverity: "high"}, `severity ">=high": want >=info, >=warning, >=error or >=critical`},
		{When{LabelsMatch: map[string]string{"x": "a("}}, `labels_match.x: "a(" is not a regular expression: missing closing ): ` + "`a(`"},
		{When{Labels: map[string]string{"": "x"}}, `labels: empty label name`},
		{When{Status: "open"}, `status "open": want "firing" or "resolved"`},
	}
	for _, tt := range tests {
		if err := tt.when.validate(); err == nil || err.Error() != tt.want {
			t.Errorf("%+v: error %v, want %s", tt.when, err, tt.want)
		}
	}
}

// TestEvaluationOrder: the most specific pattern first, entries of one
// pattern in file order, the first whose conditions hold takes the alert.
func TestEvaluationOrder(t *testing.T) {
	t.Parallel()
	cfg := Config{Handlers: []Entry{
		{On: "alerts.>", Name: "drop-info", When: When{Severity: []string{"info"}}},
		{On: "alerts.>", Name: "rest", Print: true},
		{On: "alerts.disk.*", Name: "disk-db", When: When{Labels: map[string]string{"team": "db"}}, Print: true},
		{On: "alerts.disk.*", Name: "disk-critical", When: When{MinSeverity: "critical"}, Print: true},
		{On: "alerts.disk.full", Name: "disk-full-resolved", When: When{Status: stream.StatusResolved}, Print: true},
		{On: "alerts.*.full", Name: "any-full", Print: true},
		{On: "metrics.>", Name: "metrics-critical", When: When{Severity: []string{"critical"}}, Print: true},
	}}
	rs, err := NewRules(cfg, Deps{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	wantOrder := []string{"disk-full-resolved", "disk-db", "disk-critical", "any-full", "drop-info", "rest", "metrics-critical"}
	if got := rs.Entries(); !reflect.DeepEqual(got, wantOrder) {
		t.Errorf("evaluation order %q, want %q", got, wantOrder)
	}
	db := map[string]string{"team": "db"}
	tests := []struct {
		subject string
		alert   stream.Alert
		want    string // "" for none
	}{
		{"alerts.disk.full", stream.Alert{Status: stream.StatusResolved, Labels: db}, "disk-full-resolved"},
		{"alerts.disk.full", stream.Alert{Severity: "critical", Labels: db}, "disk-db"}, // db before critical: file order
		{"alerts.disk.full", stream.Alert{Severity: "critical"}, "disk-critical"},
		{"alerts.disk.full", stream.Alert{Severity: "warning"}, "any-full"}, // falls through to a less specific pattern
		{"alerts.disk.sda", stream.Alert{Severity: "warning"}, "rest"},
		{"alerts.disk.sda", stream.Alert{Severity: "info"}, "drop-info"}, // "drop-info" comes first in the file
		{"alerts.cpu", stream.Alert{Severity: "critical"}, "rest"},
		{"alerts.net.full", stream.Alert{Severity: "info"}, "any-full"},
		{"metrics.cpu", stream.Alert{Severity: "critical"}, "metrics-critical"},
		{"metrics.cpu", stream.Alert{Severity: "warning"}, ""},
		{"other", stream.Alert{Severity: "critical"}, ""},
	}
	for _, tt := range tests {
		tt.alert.Subject = tt.subject
		if tt.alert.Severity == "" {
			tt.alert.Severity = stream.SeverityWarning
		}
		got := ""
		if ru := rs.decide(tt.subject, tt.alert, nil).taker; ru != nil {
			got = ru.name
		}
		if got != tt.want {
			t.Errorf("%s %+v: taken by %q, want %q", tt.subject, tt.alert, got, tt.want)
		}
	}
}

func TestEntryNames(t *testing.T) {
	t.Parallel()
	got := entryNames([]Entry{{On: "a.>"}, {On: "a.b"}, {On: "a.>"}, {On: "a.>", Name: "x"}, {On: "a.>"}})
	if want := []string{"a.>", "a.b", "a.>#2", "x", "a.>#4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("names %q, want %q", got, want)
	}
	err := Config{Handlers: []Entry{
		{On: "a.>", Name: "pager", When: When{Status: stream.StatusFiring}, Print: true},
		{On: "b.>", Name: "pager", Print: true},
	}}.validate()
	if want := `handlers[1]: name "pager" is taken by the entry at handlers[0]`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

// TestProcessOutcomes: what the processor is told for each case.
func TestProcessOutcomes(t *testing.T) {
	t.Parallel()
	cfg := Config{Handlers: []Entry{
		{On: "alerts.>", Name: "drop-info", When: When{Severity: []string{"info"}}},
		{On: "alerts.>", Name: "critical", When: When{Severity: []string{"critical"}}, Print: true},
	}}
	rs, err := NewRules(cfg, Deps{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(payload string) *processor.Message {
		return processor.NewMessage("alerts.x", []byte(payload), nil, processor.MessageInfo{Stream: "ALERTS", Sequence: 1})
	}
	ctx := context.Background()
	if err := rs.Process(ctx, msg(`{"severity":"info"}`)); !errors.Is(err, processor.ErrDrop) {
		t.Errorf("filtered: %v, want ErrDrop", err)
	}
	if err := rs.Process(ctx, msg(`{"severity":"critical"}`)); err != nil {
		t.Errorf("critical: %v", err)
	}
	err = rs.Process(ctx, msg(`{"severity":"warning"}`))
	var perm *processor.PermanentError
	if !errors.Is(err, processor.ErrNoHandler) || !errors.As(err, &perm) {
		t.Errorf("no entry takes it: %v, want a permanent ErrNoHandler", err)
	}
	want := []EntryCount{{Entry: "drop-info", Filtered: 1}, {Entry: "critical"}}
	if got := rs.Counts().Snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("counts %+v, want %+v", got, want)
	}
}

// TestLoadRulesExample: the YAML of the issue and of docs/configuration.md,
// as written.
func TestLoadRulesExample(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(filepath.Join(testdata, "rules.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{
			On: "alerts.disk.>",
			When: When{
				Severity:    []string{"critical", "error"},
				Labels:      map[string]string{"team": "db"},
				LabelsMatch: map[string]string{"instance": "db-.*"},
				Status:      stream.StatusFiring,
			},
			Suppress: &SuppressConfig{Key: "{{.Labels.instance}}", For: 10 * time.Minute},
			Limit:    &LimitConfig{Rate: "10/m", Concurrent: 2},
			Exec:     &ExecConfig{Command: []string{"/usr/local/bin/page", "--team", "db"}},
			line:     2,
		},
		{On: "alerts.disk.>", Name: "disk-warnings", When: When{MinSeverity: "warning"}, Print: true, line: 11},
		{On: "alerts.>", When: When{Severity: []string{"info"}}, line: 15},
		{On: "alerts.>", Print: true, line: 17},
	}
	if !reflect.DeepEqual(cfg.Handlers, want) {
		t.Errorf("config:\n got %s\nwant %s", dump(cfg), dump(Config{Handlers: want}))
	}
	file, err := os.ReadFile(filepath.Join(testdata, "rules.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+string(file)+"```") {
		t.Error("docs/configuration.md does not show testdata/handlers/rules.example.yaml as it is")
	}
}

func TestLoadRulesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want string // after "<path>: "
	}{
		{"bad_rules_regexp.yaml", `line 4: when: labels_match.instance: "db-(.*" is not a regular expression: missing closing ): ` + "`db-(.*`"},
		{"bad_rules_severity.yaml", `line 3: when: severity "urgent": want info, warning, error or critical`},
		{"bad_rules_status.yaml", `line 4: when: status "open": want "firing" or "resolved"`},
		{"bad_rules_rate.yaml", `line 3: limit: rate "10/fortnight": want runs per period, e.g. "10/s", "10/m", "100/h" or "5/30s"`},
		{"bad_rules_suppress.yaml", `line 4: suppress: key "{{.Labels.instance": not a valid template: 1: unclosed action`},
		{"bad_rules_suppress_for.yaml", `line 5: suppress: for: want a window of at least 1s, e.g. "10m"`},
		{"bad_rules_shadowed.yaml", `line 4: handler "alerts.>" is never reached: the entry at line 2 takes every alert on "alerts.>" first (give it conditions, or merge the two)`},
		{"bad_rules_unknown.yaml", `line 5: unknown field "label" in when (did you mean "labels"?)`},
		{"bad_rules_suppress_no_action.yaml", `line 2: handler "alerts.>" has suppress or limit but no action to apply them to: set print, exec, webhook, slack or pagerduty`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(testdata, tt.file)
			_, err := LoadConfig(path)
			if want := path + ": " + tt.want; err == nil || err.Error() != want {
				t.Errorf("error:\n got %v\nwant %s", err, want)
			}
		})
	}
}

func TestParseRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		yaml    string
		want    Entry
		wantErr string
	}{
		{name: "one severity", yaml: "handlers:\n  - on: a\n    when: {severity: critical}\n    print: true\n",
			want: Entry{On: "a", When: When{Severity: []string{"critical"}}, Print: true, line: 2}},
		{name: "at least", yaml: "handlers:\n  - on: a\n    when: {severity: \">= error\"}\n    print: true\n",
			want: Entry{On: "a", When: When{MinSeverity: "error"}, Print: true, line: 2}},
		{name: "burst", yaml: "handlers:\n  - on: a\n    limit: {rate: 5/30s, burst: 3}\n    print: true\n",
			want: Entry{On: "a", Limit: &LimitConfig{Rate: "5/30s", Burst: 3}, Print: true, line: 2}},
		{name: "default key", yaml: "handlers:\n  - on: a\n    suppress: {for: 1m}\n    print: true\n",
			want: Entry{On: "a", Suppress: &SuppressConfig{For: time.Minute}, Print: true, line: 2}},
		{name: "filter", yaml: "handlers:\n  - on: a\n    when: {status: resolved}\n",
			want: Entry{On: "a", When: When{Status: stream.StatusResolved}, line: 2}},
		{name: "severity a number", yaml: "handlers:\n  - on: a\n    when: {severity: 3}\n    print: true\n",
			wantErr: `line 3: when.severity must be a list of severities, one severity, or ">=" and one, got "3" (an integer)`},
		{name: "concurrent a string", yaml: "handlers:\n  - on: a\n    limit: {concurrent: two}\n    print: true\n",
			wantErr: `line 3: limit.concurrent must be an integer, got "two" (a string)`},
		{name: "empty limit", yaml: "handlers:\n  - on: a\n    limit: {}\n    print: true\n",
			wantErr: `line 3: limit: set rate ("10/m") or concurrent, or both`},
		{name: "burst without rate", yaml: "handlers:\n  - on: a\n    limit: {concurrent: 1, burst: 2}\n    print: true\n",
			wantErr: `line 3: limit: burst 2: want a positive number, with a rate`},
		{name: "labels not a mapping", yaml: "handlers:\n  - on: a\n    when: {labels: [team]}\n    print: true\n",
			wantErr: `line 3: when.labels must be a mapping of names to strings, got a list`},
		{name: "range over a number", yaml: "handlers:\n  - on: a\n    suppress: {key: \"{{range 300000000}}{{end}}\", for: 1m}\n    print: true\n",
			wantErr: `line 3: suppress: key "{{range 300000000}}{{end}}": range over 300000000: range over the alert's fields only, e.g. {{range $k, $v := .Labels}}`},
		{name: "nested range over a number", yaml: "handlers:\n  - on: a\n    suppress: {key: \"{{if .Labels}}{{range $i := 9}}{{end}}{{end}}\", for: 1m}\n    print: true\n",
			wantErr: `line 3: suppress: key "{{if .Labels}}{{range $i := 9}}{{end}}{{end}}": range over $i := 9: range over the alert's fields only, e.g. {{range $k, $v := .Labels}}`},
		{name: "range over dot", yaml: "handlers:\n  - on: a\n    suppress: {key: \"{{with 9}}{{range .}}{{end}}{{end}}\", for: 1m}\n    print: true\n",
			wantErr: `line 3: suppress: key "{{with 9}}{{range .}}{{end}}{{end}}": range over .: range over the alert's fields only, e.g. {{range $k, $v := .Labels}}`},
		{name: "template", yaml: "handlers:\n  - on: a\n    suppress: {key: \"{{define \\\"x\\\"}}{{template \\\"x\\\"}}{{end}}{{template \\\"x\\\"}}\", for: 1m}\n    print: true\n",
			wantErr: `line 3: suppress: key "{{define \"x\"}}{{template \"x\"}}{{end}}{{template \"x\"}}": {{template}} is not allowed`},
		{name: "template fails on an alert", yaml: "handlers:\n  - on: a\n    suppress: {key: \"{{.Labels.x.y}}\", for: 1m}\n    print: true\n",
			wantErr: `line 3: suppress: key "{{.Labels.x.y}}": fails on a sample alert: 1:9: executing "key" at <.Labels.x.y>: can't evaluate field y in type string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ParseConfig([]byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error:\n got %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Handlers) != 1 || !reflect.DeepEqual(cfg.Handlers[0], tt.want) {
				t.Errorf("config:\n got %s\nwant %s", dump(cfg), dump(Config{Handlers: []Entry{tt.want}}))
			}
		})
	}
}

func TestSuppressKeyBounded(t *testing.T) {
	t.Parallel()
	s, err := SuppressConfig{Key: "{{range .Labels}}{{.}}{{.}}{{.}}{{.}}{{end}}", For: time.Minute}.parse()
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.tmpl.render(stream.Alert{Labels: map[string]string{"a": strings.Repeat("x", 2000), "b": "y"}}, maxKeyLen)
	if err == nil || !strings.Contains(err.Error(), "longer than 4096 bytes") {
		t.Errorf("error %v, want the key's bound", err)
	}
}
