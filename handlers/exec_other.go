//go:build !unix

package handlers

import (
	"log/slog"
	"os/exec"
)

// run runs cmd: cancellation kills the process itself
// (exec.CommandContext's default), not its children.
func run(cmd *exec.Cmd, _ *slog.Logger) error { return cmd.Run() }
