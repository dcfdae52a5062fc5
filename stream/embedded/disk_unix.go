//go:build unix

package embedded

import "golang.org/x/sys/unix"

// diskFree is the space an unprivileged writer has left on dir's
// filesystem, or nil when it cannot be read.
func diskFree(dir string) *uint64 {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return nil
	}
	free := uint64(fs.Bavail) * uint64(fs.Bsize)
	return &free
}
