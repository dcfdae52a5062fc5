package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/reactor-alerts/reactor/stream"
)

func groupCommand() *cli.Command {
	return &cli.Command{
		Name:  "group",
		Usage: "pause or resume a consumer group",
		UsageText: `reactor group pause [--for DURATION] GROUP
reactor group resume GROUP`,
		Description: `A paused group receives no alerts until it is resumed (or its pause runs out):
every process of the group stays up, says in its log that the group is paused,
and waits; alerts keep being stored and wait in the group's backlog. Other
groups go on. reactor status shows which groups are paused. It is JetStream's
consumer pause, so a restarted process does not resume its group.`,
		Subcommands: []*cli.Command{
			{
				Name:      "pause",
				Usage:     "stop delivering alerts to a group until it is resumed",
				UsageText: "reactor group pause [--for DURATION] GROUP [options]",
				Description: `Examples:
   reactor group pause reactor
   reactor group pause --for 30m reactor`,
				Flags: append([]cli.Flag{
					&cli.DurationFlag{Name: "for", Usage: "resume by itself after this long; 0 pauses until `reactor group resume`", EnvVars: []string{"REACTOR_PAUSE_FOR"}},
				}, clientFlags()...),
				Action: groupPause,
			},
			{
				Name:      "resume",
				Usage:     "deliver alerts to a paused group again",
				UsageText: "reactor group resume GROUP [options]",
				Description: `Examples:
   reactor group resume reactor`,
				Flags:  clientFlags(),
				Action: groupResume,
			},
		},
	}
}

func groupArg(c *cli.Context) (string, error) {
	if err := checkNoFlagArgs(c); err != nil {
		return "", err
	}
	if c.NArg() != 1 {
		return "", usageErrorf("give one group name, e.g. 'reactor group %s reactor' (reactor status lists the groups)", c.Command.Name)
	}
	return c.Args().First(), nil
}

func groupPause(c *cli.Context) error {
	name, err := groupArg(c)
	if err != nil {
		return err
	}
	d := c.Duration("for")
	if d < 0 {
		return usageErrorf("--for %s is negative: give how long to pause, e.g. 30m, or 0 for until resumed", d)
	}
	var until time.Time
	if d > 0 {
		until = time.Now().Add(d)
	}
	conn, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	got, err := stream.PauseGroup(c.Context, conn.JS, topology(c), name, until)
	if err != nil {
		return groupError(err)
	}
	if d == 0 {
		fmt.Fprintf(c.App.Writer, "paused group %s until resumed (reactor group resume %s)\n", name, name)
		return nil
	}
	fmt.Fprintf(c.App.Writer, "paused group %s until %s\n", name, got.UTC().Format(time.RFC3339))
	return nil
}

func groupResume(c *cli.Context) error {
	name, err := groupArg(c)
	if err != nil {
		return err
	}
	conn, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := stream.ResumeGroup(c.Context, conn.JS, topology(c), name); err != nil {
		return groupError(err)
	}
	fmt.Fprintf(c.App.Writer, "resumed group %s\n", name)
	return nil
}

func groupError(err error) error {
	if errors.Is(err, stream.ErrGroupNotFound) {
		return withHint(err, "reactor status lists the groups")
	}
	return err
}
