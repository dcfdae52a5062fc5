package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/urfave/cli/v2"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/text"
	"gopkg.in/yaml.v3"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"github.com/reactor-alerts/reactor/handlers"
)

// The docs cannot drift from the code: every `reactor ...` command line in
// README.md and docs/*.md (shell code blocks and code spans) parses against
// the real CLI without running it (the command and its subcommand exist,
// every flag exists, flags come before arguments), every YAML block that is
// a handlers config loads, and every relative link leads to a file and
// heading that exist.

// docPages are the pages the README links to; each must exist.
var docPages = []string{"configuration.md", "ingest.md", "console.md", "operations.md", "design.md", "performance.md", "library.md"}

func TestDocs(t *testing.T) {
	root := filepath.Join("..", "..")
	files := []string{filepath.Join(root, "README.md")}
	for _, p := range docPages {
		files = append(files, filepath.Join(root, "docs", p))
	}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range more {
		if !slices.Contains(files, f) {
			files = append(files, f)
		}
	}
	docs := map[string]*doc{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs[f] = parseDoc(f, src)
	}
	// A config may name ${VAR}s, which must be set for it to load.
	for _, d := range docs {
		for _, s := range d.yaml {
			for _, m := range envRef.FindAllStringSubmatch(s.text, -1) {
				if _, ok := os.LookupEnv(m[1]); !ok {
					t.Setenv(m[1], "dummy")
				}
			}
		}
	}
	var commands, configs int
	for _, f := range files {
		d := docs[f]
		for _, p := range d.check(docs) {
			t.Error(p)
		}
		commands += d.commands
		configs += d.configs
	}
	// The extraction itself must work: the docs show dozens of commands
	// and several configs.
	if commands < 50 || configs < 2 {
		t.Errorf("checked %d command lines and %d handlers configs: the docs have more", commands, configs)
	}
	t.Logf("checked %d command lines and %d handlers configs in %d files", commands, configs, len(files))
}

// The README's test command is the one CI runs.
func TestDocsTestCommand(t *testing.T) {
	t.Parallel()
	ci, err := os.ReadFile(filepath.Join("..", "..", ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(go test .*\./\.\.\.)\s*$`).FindSubmatch(ci)
	if m == nil {
		t.Fatal(".ci/run has no go test ./... line")
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("```sh\n"+string(m[1])+"\n```")) {
		t.Errorf("README.md does not show CI's test command %q in a sh block", m[1])
	}
}

// The check finds what it must: it is not a test that cannot fail.
func TestDocsCheckFails(t *testing.T) {
	t.Parallel()
	src := "# Broken\n\n" +
		"Run `reactor run --no-such-flag` or `reactor sned --on x hi`.\n\n" +
		"```sh\nreactor dlq lss\necho '{}' | reactor rules explain --config x.yaml - --json\n" +
		"reactor dlq ls --limit many\n```\n\n" +
		"```yaml\nhandlers:\n  - on: alerts.x\n    exec: {comand: [true]}\n```\n\n" +
		"See [the design](design.md#no-such-heading) and [nothing](nothing.md).\n"
	d := parseDoc("broken.md", []byte(src))
	problems := strings.Join(d.check(map[string]*doc{"design.md": parseDoc("design.md", []byte("# Design\n"))}), "\n")
	for _, want := range []string{
		`broken.md:3: reactor run --no-such-flag: reactor: unknown flag --no-such-flag`,
		`broken.md:3: reactor sned --on x hi: reactor: unknown command "sned"`,
		`broken.md:6: reactor dlq lss: reactor: unknown command "lss"`,
		`broken.md:7: reactor rules explain --config x.yaml - --json: reactor: flag --json after the arguments`,
		`broken.md:8: reactor dlq ls --limit many: reactor: invalid value "many" for --limit`,
		`broken.md:12: handlers config: line 3: unknown field "comand"`,
		`broken.md:17: link design.md#no-such-heading: no heading "no-such-heading"`,
		`broken.md:17: link nothing.md: no such file`,
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("the check did not report %q; it reported:\n%s", want, problems)
		}
	}
	if d.commands != 5 || d.configs != 1 {
		t.Errorf("checked %d commands and %d configs, want 5 and 1", d.commands, d.configs)
	}
}

// snippet is a piece of a doc to check, at its line.
type snippet struct {
	line int
	text string
}

// doc is one Markdown file, as its checks need it.
type doc struct {
	path    string
	shell   []snippet // shell code blocks, and code spans that start with "reactor "
	yaml    []snippet // YAML code blocks
	links   []snippet // relative link destinations
	anchors map[string]bool
	// commands and configs count what check checked.
	commands, configs int
}

var (
	envRef      = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	placeholder = regexp.MustCompile(`^[A-Z][A-Z0-9_]*(\.\.\.)?$`)
	shellLangs  = []string{"sh", "bash", "shell", "console"}
)

func parseDoc(path string, src []byte) *doc {
	d := &doc{path: path, anchors: map[string]bool{}}
	md := goldmark.New(goldmark.WithExtensions(extension.GFM))
	root := md.Parser().Parse(text.NewReader(src))
	line := func(off int) int { return bytes.Count(src[:off], []byte("\n")) + 1 }
	_ = ast.Walk(root, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.FencedCodeBlock:
			lines := n.Lines()
			if lines.Len() == 0 {
				break
			}
			var body bytes.Buffer
			for i := range lines.Len() {
				seg := lines.At(i)
				body.Write(seg.Value(src))
			}
			lang := string(n.Language(src))
			s := snippet{line: line(lines.At(0).Start), text: body.String()}
			switch {
			case slices.Contains(shellLangs, lang):
				d.shell = append(d.shell, s)
			case lang == "yaml" || lang == "yml":
				d.yaml = append(d.yaml, s)
			}
		case *ast.CodeSpan:
			t, off := inlineText(n, src)
			if strings.HasPrefix(t, "reactor ") {
				d.shell = append(d.shell, snippet{line: line(off), text: t})
			}
		case *ast.Link:
			d.link(string(n.Destination), n, src, line)
		case *ast.Image:
			d.link(string(n.Destination), n, src, line)
		case *ast.Heading:
			t, _ := inlineText(n, src)
			d.anchors[slug(t)] = true
		}
		return ast.WalkContinue, nil
	})
	return d
}

// link records a relative link.
func (d *doc) link(dest string, n ast.Node, src []byte, line func(int) int) {
	if strings.Contains(dest, "://") || strings.HasPrefix(dest, "mailto:") {
		return
	}
	_, off := inlineText(n, src)
	d.links = append(d.links, snippet{line: line(off), text: dest})
}

// inlineText is the text of n's inline children, and the offset where it
// starts.
func inlineText(n ast.Node, src []byte) (string, int) {
	var b strings.Builder
	off := -1
	_ = ast.Walk(n, func(c ast.Node, entering bool) (ast.WalkStatus, error) {
		if t, ok := c.(*ast.Text); ok && entering {
			if off < 0 {
				off = t.Segment.Start
			}
			seg := t.Segment
			b.Write(seg.Value(src))
			if t.SoftLineBreak() {
				b.WriteByte(' ')
			}
		}
		return ast.WalkContinue, nil
	})
	return b.String(), max(off, 0)
}

// slug is GitHub's anchor for a heading: lower case, punctuation dropped,
// spaces as hyphens.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// check returns the problems of d, one line each ("file:line: what"); docs
// are the other files, for links.
func (d *doc) check(docs map[string]*doc) []string {
	var out []string
	for _, s := range d.shell {
		cmds, err := reactorCommands(s.text)
		if err != nil {
			out = append(out, fmt.Sprintf("%s:%d: not a valid shell command line: %v", d.path, s.line, err))
			continue
		}
		for _, c := range cmds {
			d.commands++
			if err := checkCommandLine(c.args); err != nil {
				out = append(out, fmt.Sprintf("%s:%d: reactor %s: %v", d.path, s.line+c.line-1, strings.Join(c.args, " "), err))
			}
		}
	}
	for _, s := range d.yaml {
		var top map[string]any
		if err := yaml.Unmarshal([]byte(s.text), &top); err != nil {
			out = append(out, fmt.Sprintf("%s:%d: not valid YAML: %v", d.path, s.line, err))
			continue
		}
		_, h := top["handlers"]
		_, p := top["print"]
		if !h && !p {
			continue // another program's config (Alertmanager, Grafana)
		}
		d.configs++
		if _, err := handlers.ParseConfig([]byte(s.text)); err != nil {
			out = append(out, fmt.Sprintf("%s:%d: handlers config: %v", d.path, s.line, err))
		}
	}
	for _, l := range d.links {
		file, anchor, _ := strings.Cut(l.text, "#")
		target := d
		if file != "" {
			path := filepath.Join(filepath.Dir(d.path), file)
			if target = docs[path]; target == nil {
				if _, err := os.Stat(path); err != nil {
					out = append(out, fmt.Sprintf("%s:%d: link %s: no such file", d.path, l.line, l.text))
					continue
				}
			}
		}
		if anchor != "" && (target == nil || !target.anchors[anchor]) {
			out = append(out, fmt.Sprintf("%s:%d: link %s: no heading %q", d.path, l.line, l.text, anchor))
		}
	}
	return out
}

// commandLine is one reactor command of a snippet: its arguments after
// "reactor", and its line in the snippet.
type commandLine struct {
	line int
	args []string
}

// reactorCommands parses a shell snippet and returns its reactor commands:
// reactor ..., ./reactor ... and go run ./cmd/reactor ..., wherever they
// stand in pipes and lists. Variables expand to a dummy value.
func reactorCommands(script string) ([]commandLine, error) {
	f, err := syntax.NewParser().Parse(strings.NewReader(script), "")
	if err != nil {
		return nil, err
	}
	cfg := &expand.Config{Env: expand.FuncEnviron(func(string) string { return "x" })}
	var out []commandLine
	var werr error
	syntax.Walk(f, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok || werr != nil {
			return werr == nil
		}
		var args []string
		for _, w := range call.Args {
			s, err := expand.Literal(cfg, w)
			if err != nil {
				werr = err
				return false
			}
			args = append(args, s)
		}
		switch {
		case len(args) > 0 && (args[0] == "reactor" || args[0] == "./reactor"):
			args = args[1:]
		case len(args) > 2 && args[0] == "go" && args[1] == "run" && args[2] == "./cmd/reactor":
			args = args[3:]
		default:
			return true
		}
		out = append(out, commandLine{line: int(call.Pos().Line()), args: args})
		return true
	})
	return out, werr
}

// checkCommandLine parses args as `reactor args...` does, with every
// command's action replaced by a check of its arguments: nothing runs. An
// upper-case word where a command goes (reactor COMMAND --help) or as a
// flag's value (--seq N) is a placeholder.
func checkCommandLine(args []string) error {
	if len(args) > 0 && placeholder.MatchString(args[0]) {
		return nil
	}
	app := newApp()
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	var stub func(cmds []*cli.Command)
	stub = func(cmds []*cli.Command) {
		for _, c := range cmds {
			if len(c.Subcommands) > 0 {
				stub(c.Subcommands) // keeps unknownCommand for a mistyped subcommand
				continue
			}
			c.Action = argsAfterFlags
		}
	}
	stub(app.Commands)
	err := app.RunContext(context.Background(), append([]string{"reactor"}, args...))
	var ee *exitError
	if errors.As(err, &ee) && ee.code == exitUsage {
		if m := invalidValue.FindStringSubmatch(err.Error()); m != nil && placeholder.MatchString(m[1]) {
			return nil
		}
	}
	if err != nil {
		var b strings.Builder
		report(&b, err)
		return errors.New(strings.TrimSpace(b.String()))
	}
	return nil
}

var invalidValue = regexp.MustCompile(`^(?:invalid value|bad duration) "([^"]*)" for --`)

// argsAfterFlags is the stand-in action of every command: flags go before
// arguments ("-" alone is stdin).
func argsAfterFlags(c *cli.Context) error {
	for _, a := range c.Args().Slice() {
		if strings.HasPrefix(a, "-") && a != "-" {
			return usageErrorf("flag %s after the arguments: put flags first", a)
		}
	}
	return nil
}
