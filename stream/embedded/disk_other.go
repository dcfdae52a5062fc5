//go:build !unix

package embedded

// diskFree is nil: the free space of a filesystem is read on Unix only.
func diskFree(string) *uint64 { return nil }
