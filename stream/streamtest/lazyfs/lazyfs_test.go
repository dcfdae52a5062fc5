//go:build linux

package lazyfs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/reactor-alerts/reactor/stream/streamtest/lazyfs"
)

// TestPowerLoss: what was fsync'ed survives a power loss; what was written
// after, overwrites and truncations included, is gone; what was never
// fsync'ed comes back empty. A clean unmount keeps everything.
func TestPowerLoss(t *testing.T) {
	t.Parallel()
	l := lazyfs.New(t)
	path := func(name string) string { return filepath.Join(l.Dir(), name) }
	write := func(f *os.File, off int64, s string) {
		t.Helper()
		if _, err := f.WriteAt([]byte(s), off); err != nil {
			t.Fatal(err)
		}
	}
	synced, err := os.Create(path("synced"))
	if err != nil {
		t.Fatal(err)
	}
	write(synced, 0, "durable")
	if err := synced.Sync(); err != nil {
		t.Fatal(err)
	}
	write(synced, 0, "DUR")                // overwrite, not synced
	write(synced, 7, " and lost")          // append, not synced
	if err := synced.Close(); err != nil { // a close is no fsync
		t.Fatal(err)
	}
	if got := read(t, path("synced")); got != "DURable and lost" {
		t.Fatalf("before the power loss, synced reads %q", got)
	}
	if err := os.WriteFile(path("never"), []byte("never synced"), 0o600); err != nil {
		t.Fatal(err)
	}
	shrunk, err := os.Create(path("shrunk"))
	if err != nil {
		t.Fatal(err)
	}
	write(shrunk, 0, "0123456789")
	if err := shrunk.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := shrunk.Truncate(4); err != nil {
		t.Fatal(err)
	}
	_ = shrunk.Close()
	if err := os.MkdirAll(path("dir/sub"), 0o700); err != nil {
		t.Fatal(err)
	}

	loss, err := l.PowerLoss()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"synced": "durable", "never": "", "shrunk": "0123456789"} {
		if got := read(t, path(name)); got != want {
			t.Errorf("after the power loss, %s reads %q, want %q", name, got, want)
		}
	}
	if _, err := os.Stat(path("dir/sub")); err != nil {
		t.Errorf("a directory was lost: %v", err)
	}
	if loss.Files != 3 || l.Fsyncs() != 2 {
		t.Errorf("loss %+v after %d fsyncs; want 3 files, after 2", loss, l.Fsyncs())
	}

	// Written again and unmounted cleanly: kept.
	if err := os.WriteFile(path("never"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Unmount(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(l.Underneath(), "never")); got != "kept" {
		t.Errorf("after a clean unmount, never reads %q, want kept", got)
	}
}

func read(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
