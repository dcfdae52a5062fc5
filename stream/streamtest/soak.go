package streamtest

import "os"

// SoakEnv is the environment variable that turns the long versions of the
// reliability tests on (`task soak` sets it).
const SoakEnv = "REACTOR_SOAK"

// Soak reports whether the long versions of the reliability tests run.
func Soak() bool { return os.Getenv(SoakEnv) != "" }

// Scale picks a test's size: fast in `go test ./...`, soak under `task soak`.
func Scale(fast, soak int) int {
	if Soak() {
		return soak
	}
	return fast
}
