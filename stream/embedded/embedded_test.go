package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/embedded"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestServerRefusesNonLoopbackWithoutAuth(t *testing.T) {
	t.Parallel()
	_, err := embedded.Start(embedded.Config{DataDir: t.TempDir(), Host: "0.0.0.0", Port: -1})
	if !errors.Is(err, embedded.ErrInsecureListen) {
		t.Fatalf("Start on 0.0.0.0 without auth: err = %v, want ErrInsecureListen", err)
	}
}

func TestServerDataDirIsPrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	streamtest.NewServerWith(t, embedded.Config{DataDir: dir, DontListen: true})
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("data dir mode %o, want 0700", perm)
	}
}

func TestServerLocksDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := embedded.Config{DataDir: dir, DontListen: true}
	first, err := embedded.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Shutdown()
	lockFile := filepath.Join(dir, embedded.LockFile)
	if got, _ := os.ReadFile(lockFile); strings.TrimSpace(string(got)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, want this process's pid %d", got, os.Getpid())
	}

	second, err := embedded.Start(cfg)
	if err == nil {
		second.Shutdown()
		t.Fatal("a second server started on a locked data dir")
	}
	var inUse *embedded.DataDirInUseError
	if !errors.As(err, &inUse) || !errors.Is(err, embedded.ErrDataDirInUse) {
		t.Fatalf("err = %v (%T), want a *DataDirInUseError wrapping ErrDataDirInUse", err, err)
	}
	if inUse.Dir != dir || inUse.PID != os.Getpid() {
		t.Errorf("error names dir %q pid %d, want %q pid %d", inUse.Dir, inUse.PID, dir, os.Getpid())
	}
	if want := fmt.Sprintf("data dir %q is in use by pid %d", dir, os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if got, _ := os.ReadFile(lockFile); strings.TrimSpace(string(got)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("the refused server changed the lock file to %q", got)
	}

	// Shutdown releases the dir: a server starts on it again.
	first.Shutdown()
	again, err := embedded.Start(cfg)
	if err != nil {
		t.Fatalf("start after the holder shut down: %v", err)
	}
	again.Shutdown()
}

func TestServerAuth(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServerWith(t, embedded.Config{User: "ops", Password: "s3cret"})
	url := conn.ServerStatus().URL
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tests := []struct {
		name    string
		auth    stream.Auth
		wantErr bool
	}{
		{"no credentials", stream.Auth{}, true},
		{"wrong password", stream.Auth{User: "ops", Password: "nope"}, true},
		{"right credentials", stream.Auth{User: "ops", Password: "s3cret"}, false},
	}
	for _, tt := range tests {
		c, err := stream.Open(ctx, stream.Config{URL: url, Auth: tt.auth})
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err = %v, wantErr %v", tt.name, err, tt.wantErr)
		}
		if err != nil && (strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "nope")) {
			t.Errorf("%s: error leaks a password: %v", tt.name, err)
		}
		if c != nil {
			_ = c.Close()
		}
	}
}
