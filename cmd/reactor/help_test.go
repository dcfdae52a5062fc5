package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/reactor-alerts/reactor/handlers"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/cli")

// TestHelpGolden pins the --help of every command: a change to a flag, its
// default or its environment variable shows in review. Regenerate with
// go test ./cmd/reactor -run TestHelpGolden -update.
func TestHelpGolden(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},
		{"run"},
		{"send"},
		{"replay"},
		{"dlq"},
		{"dlq", "ls"},
		{"dlq", "show"},
		{"dlq", "redrive"},
		{"dlq", "purge"},
		{"status"},
		{"rules"},
		{"rules", "explain"},
		{"runs"},
		{"runs", "ls"},
		{"runs", "show"},
		{"runs", "rerun"},
		{"ingest"},
		{"group"},
		{"group", "pause"},
		{"group", "resume"},
	} {
		name := strings.Join(append([]string{"help"}, args...), "-") + ".golden"
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := mustReactor(t, "", append(args, "--help")...)
			if r.stderr != "" {
				t.Errorf("--help wrote to stderr: %q", r.stderr)
			}
			path := filepath.Join("..", "..", "testdata", "cli", name)
			if *update {
				if err := os.WriteFile(path, []byte(r.stdout), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if r.stdout != string(want) {
				t.Errorf("reactor %s --help differs from %s (run with -update if the change is intended):\n--- got\n%s\n--- want\n%s",
					strings.Join(args, " "), path, r.stdout, want)
			}
		})
	}
}

// Every flag can be set from the environment, so that a deployment does not
// need a wrapper script.
func TestEveryFlagHasAnEnvVar(t *testing.T) {
	t.Parallel()
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Name == "bench" || c.Name == "help" {
				continue // bench is owned by its own file and tests
			}
			for _, f := range c.Flags {
				if f.Names()[0] == "all" {
					continue // on purpose: an environment variable must not make `dlq purge` purge everything
				}
				ev, ok := f.(interface{ GetEnvVars() []string })
				if !ok || len(ev.GetEnvVars()) == 0 {
					t.Errorf("%s %s: flag --%s has no environment variable", prefix, c.Name, f.Names()[0])
				}
			}
			walk(prefix+" "+c.Name, c.Subcommands)
		}
	}
	walk("reactor", newApp().Commands)
}

// The example config of docs/configuration.md is testdata/cli/reactor.yaml,
// and it loads: the quick start runs it.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	cfg := readFixture(t, "reactor.yaml")
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+cfg+"```") {
		t.Error("docs/configuration.md does not show testdata/cli/reactor.yaml as it is")
	}
	if _, err := handlers.LoadConfig(filepath.Join("..", "..", "testdata", "cli", "reactor.yaml")); err != nil {
		t.Errorf("example config: %v", err)
	}
}
