//go:build !unix

package handlers

import "os/exec"

// setProcessGroup leaves cmd alone: cancellation kills the process itself
// (exec.CommandContext's default), not its children.
func setProcessGroup(*exec.Cmd) {}
