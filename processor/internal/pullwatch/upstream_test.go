package pullwatch_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpstreamStillSkipsCheckPending reads the nats.go this module builds
// with and fails once the cause of the stall is gone from it: Consume's
// checkPending skips its check while fetchInProgress is set, and nothing
// checks again when the pull has been sent (nats.go#2063, PR #2090). When
// it fails, see whether Consume still stalls without the watch, and remove
// this package if it does not.
func TestUpstreamStillSkipsCheckPending(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/nats-io/nats.go").Output()
	if err != nil {
		t.Fatalf("go list nats.go: %v", err)
	}
	file := filepath.Join(strings.TrimSpace(string(out)), "jetstream", "pull.go")
	for _, p := range stallCause(t, file, nil) {
		t.Errorf("%s: %s: see whether Consume still stalls without the watch, else remove processor/internal/pullwatch", file, p)
	}
}

// stallCause parses pull.go (from src if not nil) and says what no longer
// matches the cause of the stall; nothing while the cause is there.
func stallCause(t *testing.T, file string, src any) (changed []string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, src, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	methods := map[string]*ast.FuncDecl{}
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv != nil && recvIs(fn, "pullSubscription") {
			methods[fn.Name.Name] = fn
		}
	}
	check, pull := methods["checkPending"], methods["pullMessages"]
	if check == nil || pull == nil {
		return []string{"pullSubscription.checkPending or pullMessages is gone: Consume changed"}
	}
	skips := false
	ast.Inspect(check.Body, func(n ast.Node) bool {
		if ifs, ok := n.(*ast.IfStmt); ok && mentions(ifs.Cond, "fetchInProgress") {
			skips = true
		}
		return !skips
	})
	if !skips {
		changed = append(changed, "checkPending no longer skips while fetchInProgress is set (nats.go#2063 fixed?)")
	}
	if calls(pull.Body, "checkPending") {
		changed = append(changed, "pullMessages checks pending again once a pull is sent (nats.go PR #2090?)")
	}
	return changed
}

// The check itself: it sees the cause in the shape nats.go v1.55.0 has,
// and sees it gone when either half of it is.
func TestStallCauseCheck(t *testing.T) {
	t.Parallel()
	const buggy = `package jetstream
func (s *pullSubscription) checkPending() {
	if s.pending.msgCount < s.consumeOpts.ThresholdMessages && s.fetchInProgress.Load() == 0 {
		s.requestNext(nil)
	}
}
func (s *pullSubscription) pullMessages(subject string) {
	for req := range s.fetchNext {
		s.fetchInProgress.Store(1)
		_ = s.pull(req, subject)
		s.fetchInProgress.Store(0)
	}
}`
	tests := []struct {
		name, src string
		want      int
	}{
		{"v1.55.0", buggy, 0},
		{"no skip", strings.Replace(buggy, " && s.fetchInProgress.Load() == 0", "", 1), 1},
		{"check after the pull", strings.Replace(buggy, "s.fetchInProgress.Store(0)", "s.fetchInProgress.Store(0)\n\t\ts.checkPending()", 1), 1},
		{"rewritten", "package jetstream\nfunc (s *pullSubscription) consume() {}", 1},
	}
	for _, tt := range tests {
		if got := stallCause(t, "pull.go", tt.src); len(got) != tt.want {
			t.Errorf("%s: %q, want %d findings", tt.name, got, tt.want)
		}
	}
}

func recvIs(fn *ast.FuncDecl, name string) bool {
	typ := fn.Recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.Name == name
}

// mentions reports whether expr refers to a field or variable called name.
func mentions(expr ast.Expr, name string) bool {
	found := false
	ast.Inspect(expr, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && id.Name == name {
			found = true
		}
		return !found
	})
	return found
}

// calls reports whether body calls a function or method called name.
func calls(body *ast.BlockStmt, name string) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			switch fn := c.Fun.(type) {
			case *ast.Ident:
				found = found || fn.Name == name
			case *ast.SelectorExpr:
				found = found || fn.Sel.Name == name
			}
		}
		return !found
	})
	return found
}
