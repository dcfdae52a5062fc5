//go:build linux

package lazyfs_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: a FUSE
// server still serving after its unmount.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
