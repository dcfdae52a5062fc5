package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/xrash/smetrics"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3", as
// `task build` does; otherwise it comes from the build info.
var version string

// versionUnknown is the version of a binary nothing stamped: go run, or go
// build with -buildvcs=false and no -ldflags.
const versionUnknown = "devel (no version stamped: build with `task build`)"

func appVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(version, bi)
}

// versionOf is the version of a binary: the one -ldflags set, else the
// module's (go install ...@v1.2.3), else the commit the VCS stamped.
func versionOf(ldflags string, bi *debug.BuildInfo) string {
	if ldflags != "" {
		return ldflags
	}
	if bi == nil {
		return versionUnknown
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, at string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return versionUnknown
	}
	v := "devel " + rev[:min(12, len(rev))]
	if dirty {
		v += "+dirty"
	}
	if at != "" {
		v += " (" + at + ")"
	}
	return v
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "reactor",
		Usage:   "a durable alert processor on NATS JetStream",
		Version: appVersion(),
		UsageText: `reactor run                                                 # terminal 1: process alerts
reactor send --on terminator_detected "bad robot detected"  # terminal 2: publish one
reactor COMMAND --help                                      # a command's options and examples`,
		Description: `Alerts are published to NATS JetStream and handled by a pool of workers, each
exactly as its handler says: print it, run a command, call a webhook. Nothing
is lost when a process is killed or a handler fails: a failed alert is retried
with backoff, then kept in the dead-letter stream with the reason.

Exit codes: 0 success, 1 failure, 2 usage error (unknown flag, bad value),
3 some items failed (send --file, dlq redrive --all), 130 interrupted.`,
		Commands: []*cli.Command{
			runCommand(),
			sendCommand(),
			replayCommand(),
			dlqCommand(),
			statusCommand(),
			rulesCommand(),
			runsCommand(),
			ingestCommand(),
			groupCommand(),
			// Commands owned by other files go here:
			benchCommand(),
		},
		Action:                    unknownCommand,
		DisableSliceFlagSeparator: true, // --label team=a,b keeps its comma
		// report (main.go) prints errors and picks the exit code: urfave/cli
		// must not exit by itself.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	app.OnUsageError = usageError(app.Name, app.Flags)
	for _, c := range app.Commands {
		wireUsageErrors(c, app.Name)
	}
	return app
}

// wireUsageErrors gives c and its subcommands one-line usage errors with
// exit code 2, instead of urfave/cli's full help on stdout.
func wireUsageErrors(c *cli.Command, parent string) {
	name := parent + " " + c.Name
	if c.OnUsageError == nil {
		c.OnUsageError = usageError(name, c.Flags)
	}
	if len(c.Subcommands) > 0 && c.Action == nil {
		c.Action = unknownCommand
	}
	for _, sub := range c.Subcommands {
		wireUsageErrors(sub, name)
	}
}

// unknownCommand is the action of a command that only groups others: with
// no arguments it shows the help, with one it is a usage error.
func unknownCommand(c *cli.Context) error {
	if !c.Args().Present() {
		return cli.ShowSubcommandHelp(c)
	}
	name := strings.TrimSpace(c.Command.HelpName)
	cmds := c.Command.Subcommands
	if name == "" {
		name, cmds = c.App.Name, c.App.Commands
	}
	typed := c.Args().First()
	if s := suggestCommand(cmds, typed); s != "" {
		return usageErrorf("unknown command %q: did you mean %q? see '%s --help'", typed, s, name)
	}
	return usageErrorf("unknown command %q: see '%s --help'", typed, name)
}

// suggestCommand returns the command name closest to a mistyped one, if one
// is within two edits of it and they share at least half their letters
// ("x" suggests nothing, "list" suggests "ls").
func suggestCommand(cmds []*cli.Command, typed string) string {
	best, bestDist := "", 3
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		for _, name := range c.Names() {
			d := smetrics.WagnerFischer(typed, name, 1, 1, 1)
			if d < bestDist && 2*d <= max(len(typed), len(name)) {
				best, bestDist = name, d
			}
		}
	}
	return best
}

// usageError rewrites the flag parser's errors for the command called name.
func usageError(name string, flags []cli.Flag) cli.OnUsageErrorFunc {
	return func(_ *cli.Context, err error, _ bool) error {
		msg := err.Error()
		help := fmt.Sprintf("see '%s --help'", name)
		switch {
		case strings.HasPrefix(msg, "flag provided but not defined: "):
			flag := strings.TrimLeft(strings.TrimPrefix(msg, "flag provided but not defined: "), "-")
			hint := help
			if s := suggestFlag(flags, flag); s != "" {
				hint = fmt.Sprintf("did you mean --%s? %s", s, help)
			}
			return usageErrorf("unknown flag --%s for '%s': %s", flag, name, hint)
		case strings.HasPrefix(msg, "flag needs an argument: "):
			flag := strings.TrimLeft(strings.TrimPrefix(msg, "flag needs an argument: "), "-")
			return usageErrorf("flag --%s needs a value: %s", flag, help)
		case strings.HasPrefix(msg, "invalid value "):
			// invalid value "2x" for flag -since: parse error
			var value, flag string
			if _, serr := fmt.Sscanf(msg, "invalid value %q for flag %s", &value, &flag); serr == nil {
				flag = strings.TrimSuffix(strings.TrimLeft(flag, "-"), ":")
				if isDurationFlag(flags, flag) {
					return usageErrorf("bad duration %q for --%s: want a number and a unit, e.g. 90s, 15m, 2h or 1h30m", value, flag)
				}
				return usageErrorf("invalid value %q for --%s: %s", value, flag, help)
			}
		}
		return usageErrorf("%s: %s", msg, help)
	}
}

func isDurationFlag(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		if d, ok := f.(*cli.DurationFlag); ok && d.Name == name {
			return true
		}
	}
	return false
}

// suggestFlag returns the flag name closest to a mistyped one, if one is
// within two edits of it.
func suggestFlag(flags []cli.Flag, typed string) string {
	best, bestDist := "", 3
	for _, f := range flags {
		for _, name := range f.Names() {
			d := smetrics.WagnerFischer(typed, name, 1, 1, 1)
			if d < bestDist && 2*d <= max(len(typed), len(name)) {
				best, bestDist = name, d
			}
		}
	}
	return best
}
