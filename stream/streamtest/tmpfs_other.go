//go:build !linux

package streamtest

import "testing"

// Tmpfs skips the test: mounting a tmpfs is Linux's.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	t.Skipf("streamtest: cannot mount a %d-byte tmpfs: Linux only", size)
	return ""
}
