package handlers

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: an exec
// wait, an HTTP connection, a writer.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
