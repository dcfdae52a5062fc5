package stream_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// A program that imports the library and connects by URL links nats.go,
// never nats-server: only stream/embedded (and the test helpers) import it.
func TestLibraryDoesNotLinkServer(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not on PATH: %v", err)
	}
	const server = "github.com/nats-io/nats-server/v2/server"
	pkgs := []string{".", "../processor", "../processor/metrics", "../handlers", "./ingest"}
	out, err := exec.Command(goTool, append([]string{"list", "-deps"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	for _, want := range []string{"github.com/reactor-alerts/reactor/processor", "github.com/nats-io/nats.go"} {
		if !slices.Contains(deps, want) {
			t.Fatalf("go list -deps lacks %s: the check would prove nothing\n%s", want, out)
		}
	}
	if slices.Contains(deps, server) {
		t.Errorf("%s links %s; only stream/embedded may import it", strings.Join(pkgs, " "), server)
	}
	// The check can fail: the embedded server does link it.
	out, err = exec.Command(goTool, "list", "-deps", "./embedded").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./embedded: %v\n%s", err, out)
	}
	if !slices.Contains(strings.Fields(string(out)), server) {
		t.Errorf("stream/embedded does not link %s: go list output not understood", server)
	}
}
