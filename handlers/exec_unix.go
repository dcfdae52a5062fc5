//go:build unix

package handlers

import (
	"os"
	"os/exec"
	"syscall"
)

// killGroup is cmd's Cancel: it kills the command's whole process group (it
// runs in one of its own), so that `sh -c 'a | b'` leaves no orphans
// behind.
func killGroup(cmd *exec.Cmd) func() error {
	return func() error {
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != syscall.ESRCH {
			return err
		}
		return os.ErrProcessDone // exited already: as exec.Cmd's own Cancel reports it
	}
}
