package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// The tests run the real binary, built once by TestMain, against embedded
// servers that `reactor run` starts on 127.0.0.1 in temporary directories.

var reactorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "reactor-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	reactorBin = filepath.Join(dir, "reactor")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v0.0.0-test", "-o", reactorBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build reactor:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is the environment of the commands under test: the test's own,
// without the variables reactor reads, so that the developer's NATS_URL
// does not leak into a test.
func env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATS_") && !strings.HasPrefix(kv, "REACTOR_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// result is what a finished command left.
type result struct {
	stdout, stderr string
	code           int
}

// reactor runs the binary to completion with stdin (may be empty), bounded
// by 60 seconds.
func reactor(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, reactorBin, args...)
	cmd.Env = env()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("reactor %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// mustReactor is reactor that fails the test unless the command exits 0.
func mustReactor(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := reactor(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("reactor %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// lines collects the lines a process writes.
type lines struct {
	mu      sync.Mutex
	partial []byte
	all     []string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.all = append(l.all, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
}

func (l *lines) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...)
}

// runProc is a `reactor run` in the background.
type runProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdout  *lines
	stderr  *lines
	done    chan struct{}
	url     string
	dataDir string
}

var readyURL = regexp.MustCompile(`reactor: ready: NATS on (nats://127\.0\.0\.1:\d+)`)

// startRun starts `reactor run` on a free port of 127.0.0.1 with its store in
// dataDir (a fresh one if empty), and waits until it is ready.
func startRun(t *testing.T, dataDir string, args ...string) *runProc {
	t.Helper()
	return startRunTo(t, nil, dataDir, args...)
}

// startRunTo is startRun with stdout going to out rather than to p.stdout,
// when out is not nil.
func startRunTo(t *testing.T, out *os.File, dataDir string, args ...string) *runProc {
	t.Helper()
	var w io.Writer
	if out != nil {
		w = out
	}
	return startRunWriter(t, w, nil, dataDir, args...)
}

// startRunWriter is startRun with stdout going to out (when not nil) rather
// than to p.stdout, and extra environment variables (k=v). exec copies the
// child's stdout to out as it comes, so a handler never blocks on a full
// pipe.
func startRunWriter(t *testing.T, out io.Writer, extraEnv []string, dataDir string, args ...string) *runProc {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	args = append([]string{"run", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json"}, args...)
	p := startProc(t, out, extraEnv, "reactor: ready:", args...)
	p.dataDir = dataDir
	for _, l := range p.stderr.snapshot() {
		if m := readyURL.FindStringSubmatch(l); m != nil {
			p.url = m[1]
		}
	}
	if p.url == "" {
		t.Fatalf("no URL in the ready line:\n%s", strings.Join(p.stderr.snapshot(), "\n"))
	}
	return p
}

// startProc starts `reactor args...` in the background with extra
// environment variables (k=v) and stdout going to out (p.stdout when nil),
// and waits until stderr has a line containing ready. The process is killed
// at the end of the test if it still runs.
func startProc(t *testing.T, out io.Writer, extraEnv []string, ready string, args ...string) *runProc {
	t.Helper()
	p := &runProc{t: t, cmd: exec.Command(reactorBin, args...), stdout: &lines{}, stderr: &lines{}, done: make(chan struct{})}
	p.cmd.Env = env(extraEnv...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if out != nil {
		p.cmd.Stdout = out
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start reactor %s: %v", args[0], err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	p.waitStderr(20*time.Second, ready)
	return p
}

func (p *runProc) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// signal sends sig and waits, up to timeout, for the exit; it returns the
// exit code (-1 when killed by a signal).
func (p *runProc) stop(sig syscall.Signal, timeout time.Duration) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("reactor run did not exit within %s of %v\nstderr:\n%s", timeout, sig, strings.Join(p.stderr.snapshot(), "\n"))
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *runProc) waitStderr(timeout time.Duration, substr string) {
	p.t.Helper()
	p.waitFor(timeout, p.stderr, func(ls []string) bool {
		for _, l := range ls {
			if strings.Contains(l, substr) {
				return true
			}
		}
		return false
	}, "stderr line with %q", substr)
}

// waitFor polls the lines until cond holds, the process exits or timeout.
func (p *runProc) waitFor(timeout time.Duration, l *lines, cond func([]string) bool, format string, args ...any) {
	p.t.Helper()
	streamtest.Eventually(p.t, timeout, func() error {
		if cond(l.snapshot()) {
			return nil
		}
		select {
		case <-p.done:
			// Exited: what it wrote is complete, so waiting longer is useless.
			if !cond(l.snapshot()) {
				p.t.Fatalf("reactor run exited (%v) while waiting for "+format+"\nstderr:\n%s", append(append([]any{p.cmd.ProcessState}, args...), strings.Join(p.stderr.snapshot(), "\n"))...)
			}
			return nil
		default:
		}
		return fmt.Errorf("not seen yet\nstdout:\n%s\nstderr:\n%s", tail(p.stdout.snapshot(), 20), strings.Join(p.stderr.snapshot(), "\n"))
	}, append([]any{format}, args...)...)
}

var (
	idField        = regexp.MustCompile(`\bid=(\S+)`)
	deliveredField = regexp.MustCompile(`\bdelivered=(\d+)`)
)

// ids returns the alert ids in the print handler's lines.
func ids(ls []string) map[string]int {
	out := make(map[string]int)
	for _, l := range ls {
		if m := idField.FindStringSubmatch(l); m != nil {
			out[m[1]]++
		}
	}
	return out
}

// waitIDs waits until the print handler printed n distinct ids.
func (p *runProc) waitIDs(timeout time.Duration, n int) map[string]int {
	p.t.Helper()
	p.waitFor(timeout, p.stdout, func(ls []string) bool { return len(ids(ls)) >= n }, "%d distinct alert ids on stdout", n)
	return ids(p.stdout.snapshot())
}

func tail(ls []string, n int) string {
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// closedURL is a NATS URL on 127.0.0.1 where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "nats://" + addr
}

// writeFile writes content to name in a fresh temp dir and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// readFixture returns a file of testdata/cli.
func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cli", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
