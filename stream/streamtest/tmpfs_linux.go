package streamtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Tmpfs mounts a tmpfs of size bytes on a fresh directory under
// t.TempDir() and returns it; t.Cleanup unmounts it. It skips the test, saying
// why, where it cannot mount (not root, no tmpfs, not Linux).
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("streamtest: %v", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("streamtest: cannot mount a %d-byte tmpfs on %s (needs root on Linux): %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("streamtest: unmount %s: %v", dir, err)
		}
	})
	return dir
}
