//go:build unix && !linux

package handlers

import (
	"log/slog"
	"os/exec"
	"syscall"
)

// run runs cmd in a process group of its own, killed whole on timeout or
// cancellation. Unlike on Linux, a reactor that dies leaves the group
// running: there is no parent-death signal to close the gap between the
// fork and handing the group to a watcher.
func run(cmd *exec.Cmd, _ *slog.Logger) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = killGroup(cmd)
	return cmd.Run()
}
