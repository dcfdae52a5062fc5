package stream_test

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

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, streamtest.LeakOptions()...)
}

func TestServerRefusesNonLoopbackWithoutAuth(t *testing.T) {
	t.Parallel()
	_, err := stream.StartServer(stream.ServerConfig{DataDir: t.TempDir(), Host: "0.0.0.0", Port: -1})
	if !errors.Is(err, stream.ErrInsecureListen) {
		t.Fatalf("StartServer on 0.0.0.0 without auth: err = %v, want ErrInsecureListen", err)
	}
}

func TestServerDataDirIsPrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	streamtest.NewServerWith(t, stream.ServerConfig{DataDir: dir, DontListen: true})
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
	cfg := stream.ServerConfig{DataDir: dir, DontListen: true}
	first, err := stream.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Shutdown()
	lockFile := filepath.Join(dir, stream.LockFile)
	if got, _ := os.ReadFile(lockFile); strings.TrimSpace(string(got)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, want this process's pid %d", got, os.Getpid())
	}

	second, err := stream.StartServer(cfg)
	if err == nil {
		second.Shutdown()
		t.Fatal("a second server started on a locked data dir")
	}
	var inUse *stream.DataDirInUseError
	if !errors.As(err, &inUse) || !errors.Is(err, stream.ErrDataDirInUse) {
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
	again, err := stream.StartServer(cfg)
	if err != nil {
		t.Fatalf("start after the holder shut down: %v", err)
	}
	again.Shutdown()
}

func TestServerAuth(t *testing.T) {
	t.Parallel()
	conn := streamtest.NewServerWith(t, stream.ServerConfig{User: "ops", Password: "s3cret"})
	url := conn.Server.ClientURL()
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

func TestOpenNoServer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A port nothing listens on: start and stop a server to find one.
	srv, err := stream.StartServer(stream.ServerConfig{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	srv.Shutdown()
	_, err = stream.Open(ctx, stream.Config{URL: "nats://user:hunter2@" + url[len("nats://"):]})
	if !errors.Is(err, stream.ErrNoServer) {
		t.Fatalf("err = %v, want ErrNoServer", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestPublisherDeduplicates(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	p := stream.NewPublisher(conn.JS, stream.PublisherConfig{})
	ctx := context.Background()
	msg := nats.NewMsg("alerts.cpu")
	msg.Header.Set(nats.MsgIdHdr, "same-id")
	first, err := p.Publish(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Publish(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Duplicate || second.Sequence != first.Sequence {
		t.Errorf("second publish: duplicate=%v seq=%d, want a duplicate of seq %d", second.Duplicate, second.Sequence, first.Sequence)
	}
	if _, err := p.Publish(ctx, nats.NewMsg("alerts.cpu")); !errors.Is(err, stream.ErrNoMsgID) {
		t.Errorf("publish without id: err = %v, want ErrNoMsgID", err)
	}
	s, _ := conn.JS.Stream(ctx, topo.Alerts)
	if info, _ := s.Info(ctx); info.State.Msgs != 1 {
		t.Errorf("history has %d messages, want 1", info.State.Msgs)
	}
}

func TestPublishBatch(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	const n = 5000
	msgs := make([]*nats.Msg, n+1)
	for i := range n {
		msgs[i] = nats.NewMsg("alerts.batch")
		msgs[i].Header.Set(nats.MsgIdHdr, "id-"+strconv.Itoa(i))
	}
	msgs[n] = nats.NewMsg("alerts.batch") // no id: reported, not sent
	seen := make([]bool, n+1)
	failed := stream.NewPublisher(conn.JS, stream.PublisherConfig{}).PublishBatch(context.Background(), msgs, func(r stream.Result) {
		if seen[r.Index] {
			t.Errorf("result for %d reported twice", r.Index)
		}
		seen[r.Index] = true
		if r.Index < n && (r.Err != nil || r.Ack == nil) {
			t.Errorf("message %d: %v", r.Index, r.Err)
		}
	})
	if failed != 1 {
		t.Errorf("failed = %d, want 1 (the message without id)", failed)
	}
	for i, ok := range seen {
		if !ok {
			t.Errorf("no result for message %d", i)
		}
	}
	s, _ := conn.JS.Stream(context.Background(), topo.Alerts)
	if info, _ := s.Info(context.Background()); info.State.Msgs != n {
		t.Errorf("history has %d messages, want %d", info.State.Msgs, n)
	}
}
