package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestErrors(t *testing.T) {
	t.Parallel()
	closed := closedURL(t)
	invalid := "../../testdata/cli/invalid.yaml"
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // the whole of it, or a prefix ending in "..."
	}{
		{"no server", []string{"send", "--url", closed, "--on", "x", "y"}, exitFailure,
			"reactor: no NATS server at " + closed + ": start one with `reactor run` or set --url/NATS_URL\n"},
		{"no server for status", []string{"status", "--url", closed}, exitFailure,
			"reactor: no NATS server at " + closed + ": start one with `reactor run` or set --url/NATS_URL\n"},
		{"no server for dlq", []string{"dlq", "ls", "--url", closed}, exitFailure,
			"reactor: no NATS server at " + closed + ": start one with `reactor run` or set --url/NATS_URL\n"},
		{"no server for replay", []string{"replay", "--url", closed, "--since", "1h"}, exitFailure,
			"reactor: no NATS server at " + closed + ": start one with `reactor run` or set --url/NATS_URL\n"},
		{"invalid subject token", []string{"send", "--on", "bad robot", "summary"}, exitUsage,
			`reactor: invalid alert: invalid subject "alerts.bad robot": want dot-separated tokens without wildcards or spaces, e.g. alerts.disk_full` + "\n"},
		{"wildcard subject", []string{"send", "--subject", "alerts.*", "summary"}, exitUsage,
			`reactor: invalid alert: invalid subject "alerts.*"...`},
		{"empty token", []string{"send", "--subject", "alerts..x", "summary"}, exitUsage,
			`reactor: invalid alert: invalid subject "alerts..x"...`},
		{"unknown flag", []string{"send", "--bogus"}, exitUsage,
			"reactor: unknown flag --bogus for 'reactor send': see 'reactor send --help'\n"},
		{"unknown flag with a suggestion", []string{"send", "--subjet", "x"}, exitUsage,
			"reactor: unknown flag --subjet for 'reactor send': did you mean --subject? see 'reactor send --help'\n"},
		{"unknown flag of a subcommand", []string{"dlq", "ls", "--nope"}, exitUsage,
			"reactor: unknown flag --nope for 'reactor dlq ls': see 'reactor dlq ls --help'\n"},
		{"unknown command", []string{"frobnicate"}, exitUsage,
			"reactor: unknown command \"frobnicate\": see 'reactor --help'\n"},
		{"unknown short command", []string{"x"}, exitUsage,
			"reactor: unknown command \"x\": see 'reactor --help'\n"},
		{"unknown command with a suggestion", []string{"sned"}, exitUsage,
			"reactor: unknown command \"sned\": did you mean \"send\"? see 'reactor --help'\n"},
		{"unknown dlq command", []string{"dlq", "list"}, exitUsage,
			"reactor: unknown command \"list\": did you mean \"ls\"? see 'reactor dlq --help'\n"},
		{"bad duration", []string{"replay", "--since", "2x"}, exitUsage,
			`reactor: bad duration "2x" for --since: want a number and a unit, e.g. 90s, 15m, 2h or 1h30m` + "\n"},
		{"bad duration of run", []string{"run", "--ack-wait", "soon"}, exitUsage,
			`reactor: bad duration "soon" for --ack-wait...`},
		{"bad time", []string{"replay", "--from-time", "yesterday"}, exitUsage,
			`reactor: bad time "yesterday" for --from-time: want RFC 3339 (2026-01-02T15:04:05Z) or a duration before now (90s, 2h)` + "\n"},
		{"replay without a start", []string{"replay"}, exitUsage,
			"reactor: say where the replay starts with one of --since, --from-seq or --from-time: see 'reactor replay --help'\n"},
		{"duplicate window longer than the history", []string{"run", "--duplicate-window", "2h", "--history-max-age", "1h"}, exitUsage,
			"reactor: --duplicate-window and --history-max-age must be positive, the window no longer than the history..."},
		{"bad number", []string{"run", "--workers", "many"}, exitUsage,
			`reactor: invalid value "many" for --workers: see 'reactor run --help'` + "\n"},
		{"missing flag value", []string{"send", "--on"}, exitUsage,
			"reactor: flag --on needs a value: see 'reactor send --help'\n"},
		{"missing summary", []string{"send", "--on", "x"}, exitUsage,
			`reactor: missing the alert's summary: reactor send --on x "what happened"` + "\n"},
		{"flag after the summary", []string{"send", "--on", "x", "summary", "--severity", "critical"}, exitUsage,
			"reactor: flag --severity after the arguments: put flags first, e.g. 'reactor send --severity ...'\n"},
		{"bad severity", []string{"send", "--on", "x", "--severity", "urgent", "y"}, exitUsage,
			`reactor: invalid alert: invalid severity "urgent": want info, warning, error or critical` + "\n"},
		{"bad label", []string{"send", "--on", "x", "--label", "nolabel", "y"}, exitUsage,
			`reactor: bad --label "nolabel": want key=value` + "\n"},
		{"unreadable config", []string{"run", "--config", "/nonexistent/reactor.yaml"}, exitUsage,
			"reactor: load config: open /nonexistent/reactor.yaml: no such file or directory\n"},
		{"invalid config", []string{"run", "--config", invalid}, exitUsage,
			"reactor: " + invalid + `: line 4: unknown field "comand" in exec (did you mean "command"?)` + "\n"},
		{"insecure listen", []string{"run", "--listen", "0.0.0.0:0", "--data-dir", t.TempDir()}, exitUsage,
			"reactor: refusing to listen on 0.0.0.0:0 without auth: set --user and --password (or --token) to require it, or listen on 127.0.0.1\n"},
		{"bad listen", []string{"run", "--listen", "localhost"}, exitUsage,
			`reactor: bad --listen "localhost": want host:port, e.g. 127.0.0.1:4222` + "\n"},
		{"client credentials for the embedded server", []string{"run", "--creds", "ops.creds"}, exitUsage,
			"reactor: --creds is for an external server: give --url too (the embedded server takes --user/--password or --token)\n"},
		{"bad sequence", []string{"dlq", "show", "abc"}, exitUsage,
			`reactor: bad dead-letter sequence "abc": want a number from 'reactor dlq ls'` + "\n"},
		{"redrive of nothing", []string{"dlq", "redrive"}, exitUsage,
			"reactor: dlq redrive: which dead letters? give their sequences (see 'reactor dlq ls') or --all\n"},
		{"bad subject filter", []string{"dlq", "ls", "--subject", "alerts.>.x"}, exitUsage,
			`reactor: invalid --subject: invalid pattern "alerts.>.x": ">" must be the last token` + "\n"},
		{"bad log level", []string{"run", "--log-level", "loud"}, exitUsage,
			`reactor: invalid --log-level "loud": want debug, info, warn or error` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := reactor(t, "", tt.args...)
			if r.code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", r.code, tt.code, r.stderr)
			}
			if prefix, ok := strings.CutSuffix(tt.stderr, "..."); ok {
				if !strings.HasPrefix(r.stderr, prefix) || strings.Count(r.stderr, "\n") != 1 {
					t.Errorf("stderr = %q, want one line starting with %q", r.stderr, prefix)
				}
			} else if r.stderr != tt.stderr {
				t.Errorf("stderr = %q\nwant     %q", r.stderr, tt.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	if r := mustReactor(t, "", "--version"); r.stdout != "reactor version v0.0.0-test\n" {
		t.Errorf("--version printed %q", r.stdout)
	}
}

// The version says what it can, whatever stamped the binary: -ldflags (the
// Taskfile's build), the module version (go install ...@v1.2.3), or the
// VCS, and never a bare "(devel)".
func TestVersionOf(t *testing.T) {
	t.Parallel()
	bi := func(version string, settings ...string) *debug.BuildInfo {
		b := &debug.BuildInfo{Main: debug.Module{Path: "github.com/reactor-alerts/reactor", Version: version}}
		for i := 0; i+1 < len(settings); i += 2 {
			b.Settings = append(b.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		ldflags string
		bi      *debug.BuildInfo
		want    string
	}{
		{"ldflags", "v1.2.3-4-gabcdef0", bi("(devel)"), "v1.2.3-4-gabcdef0"},
		{"module version", "", bi("v1.2.3"), "v1.2.3"},
		{"VCS stamp", "", bi("(devel)", "vcs.revision", "0123456789abcdef0123", "vcs.time", "2026-12-01T10:00:00Z", "vcs.modified", "false"),
			"devel 0123456789ab (2026-12-01T10:00:00Z)"},
		{"VCS stamp of a modified tree", "", bi("(devel)", "vcs.revision", "0123456789abcdef0123", "vcs.time", "2026-12-01T10:00:00Z", "vcs.modified", "true"),
			"devel 0123456789ab+dirty (2026-12-01T10:00:00Z)"},
		{"nothing stamped", "", bi("(devel)"), versionUnknown},
		{"no build info", "", nil, versionUnknown},
	} {
		if got := versionOf(tc.ldflags, tc.bi); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if strings.Contains(versionUnknown, "(devel)") || !strings.Contains(versionUnknown, "task build") {
		t.Errorf("versionUnknown = %q: say how to get a version", versionUnknown)
	}
}
