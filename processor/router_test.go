package processor

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func TestRouterPrecedence(t *testing.T) {
	t.Parallel()
	patterns := []string{
		"alerts.>",
		"alerts.*",
		"alerts.cpu.*",
		"alerts.*.high",
		"alerts.cpu.high",
		"*.disk.>",
		"alerts.disk.>",
		"metrics.>",
	}
	r := NewRouter()
	for _, p := range patterns {
		r.Handle(p, HandlerFunc(func(context.Context, *Message) error { return nil }))
	}
	tests := []struct {
		subject, want string
	}{
		{"alerts.cpu.high", "alerts.cpu.high"}, // exact literal always wins
		{"alerts.cpu.low", "alerts.cpu.*"},     // literal 2nd token beats "*"
		{"alerts.mem.high", "alerts.*.high"},   // "*" + literal beats ">"
		{"alerts.mem", "alerts.*"},             // "*" beats ">"
		{"alerts.mem.low.x", "alerts.>"},       // only ">" matches
		{"alerts.disk.sda", "alerts.disk.>"},   // literal first token beats "*"
		{"host.disk.sda.full", "*.disk.>"},     // wildcard first token
		{"metrics.cpu", "metrics.>"},           //
		{"alerts", ""},                         // ">" needs a token
		{"other.cpu", ""},                      // nothing matches
		{"alerts..cpu", ""},                    // empty token: not a subject
		{"alerts.cpu.", ""},                    // trailing dot
		{"", ""},                               //
	}
	for _, tt := range tests {
		if _, got := r.Route(NewMessage(tt.subject, nil, nil, MessageInfo{})); got != tt.want {
			t.Errorf("Route(%q) entry = %q, want %q", tt.subject, got, tt.want)
		}
	}
}

func TestRouterDispatchAndMiddlewareOrder(t *testing.T) {
	t.Parallel()
	var trace []string
	mw := func(name string) Middleware {
		return func(next Handler) Handler {
			return HandlerFunc(func(ctx context.Context, m *Message) error {
				trace = append(trace, name)
				return next.Process(ctx, m)
			})
		}
	}
	r := NewRouter()
	r.Use(mw("outer"))
	r.On("alerts.x", func(context.Context, *Message) error {
		trace = append(trace, "handler")
		return nil
	})
	r.Use(mw("inner")) // applies to routes registered before too
	if err := r.Process(context.Background(), NewMessage("alerts.x", nil, nil, MessageInfo{})); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(trace, ","); got != "outer,inner,handler" {
		t.Errorf("call order %s, want outer,inner,handler", got)
	}
	err := r.Process(context.Background(), NewMessage("alerts.none", nil, nil, MessageInfo{}))
	var perm *PermanentError
	if !errorsAs(err, &perm) || !strings.Contains(err.Error(), "no handler") {
		t.Errorf("unrouted subject: got %v, want a permanent no-handler error", err)
	}
}

func TestRouterRegistrationPanics(t *testing.T) {
	t.Parallel()
	nop := HandlerFunc(func(context.Context, *Message) error { return nil })
	tests := []struct {
		name    string
		pattern string
		h       Handler
		want    string
	}{
		{"empty", "", nop, "empty pattern"},
		{"empty token", "alerts..x", nop, "empty token"},
		{"tail not last", "alerts.>.x", nop, "must be the last token"},
		{"partial wildcard", "alerts.cp*", nop, "wildcard inside token"},
		{"whitespace", "alerts. x", nop, "whitespace"},
		{"nil handler", "alerts.x", nil, "nil handler"},
		{"duplicate", "alerts.dup", nop, "multiple registrations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRouter()
			r.Handle("alerts.dup", nop)
			defer func() {
				v := recover()
				if v == nil || !strings.Contains(v.(string), tt.want) {
					t.Errorf("Handle(%q) panic = %v, want it to mention %q", tt.pattern, v, tt.want)
				}
			}()
			r.Handle(tt.pattern, tt.h)
		})
	}
}

func TestParsePattern(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		pattern  string
		wildcard bool
		err      string
	}{
		{"alerts.cpu", false, ""}, {"alerts", false, ""}, {"alerts.disk_full", false, ""},
		{"alerts.*", true, ""}, {"alerts.>", true, ""}, {"*", true, ""}, {">", true, ""}, {"*.>", true, ""},
		{"", false, "empty pattern"}, {"a..b", false, "empty token"}, {"alerts.", false, "empty token"},
		{".alerts", false, "empty token"}, {"a b", false, "contains whitespace"}, {"alerts.\t", false, "contains whitespace"},
		{"alerts.>.x", false, "must be the last token"}, {">.>", false, "must be the last token"},
		{"alerts.x>", false, "wildcard inside token"}, {"alerts.*x", false, "wildcard inside token"},
	} {
		p, err := ParsePattern(tt.pattern)
		if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) || p.Wildcard() != tt.wildcard {
			t.Errorf("ParsePattern(%q) = %v (wildcard %v), %v; want wildcard %v, error containing %q", tt.pattern, p, p.Wildcard(), err, tt.wildcard, tt.err)
		}
		if err == nil && p.String() != tt.pattern {
			t.Errorf("ParsePattern(%q).String() = %q", tt.pattern, p)
		}
		// Router.Handle refuses exactly what ParsePattern does.
		panicked := func() (p bool) {
			defer func() { p = recover() != nil }()
			NewRouter().Handle(tt.pattern, HandlerFunc(func(context.Context, *Message) error { return nil }))
			return false
		}()
		if panicked != (err != nil) {
			t.Errorf("Handle(%q) panicked = %v, ParsePattern error = %v", tt.pattern, panicked, err)
		}
	}
}

// entryMux routes every message to one of its two entries by payload, like
// the rules of a handlers config.
type entryMux struct{ a, b Handler }

func (e entryMux) Route(m *Message) (Handler, string) {
	if string(m.Data()) == "a" {
		return e.a, "entry-a"
	}
	return e.b, "entry-b"
}

func (e entryMux) Process(ctx context.Context, m *Message) error {
	h, _ := e.Route(m)
	return h.Process(ctx, m)
}

// TestRouterNestedMux: a Mux registered on a router names the messages its
// pattern matches by its own entries, and the router's middleware still
// wraps the handler it picks.
func TestRouterNestedMux(t *testing.T) {
	t.Parallel()
	var ran []string
	named := func(name string) Handler {
		return HandlerFunc(func(context.Context, *Message) error { ran = append(ran, name); return nil })
	}
	r := NewRouter()
	r.Handle("alerts.x", named("literal"))
	r.Handle("alerts.>", entryMux{a: named("a"), b: named("b")})
	wrapped := 0
	r.Use(func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) error { wrapped++; return next.Process(ctx, m) })
	})
	for _, tt := range []struct{ subject, data, entry string }{
		{"alerts.x", "a", "alerts.x"},
		{"alerts.y", "a", "entry-a"},
		{"alerts.y", "b", "entry-b"},
	} {
		m := NewMessage(tt.subject, []byte(tt.data), nil, MessageInfo{})
		h, entry := r.Route(m)
		if entry != tt.entry {
			t.Errorf("Route(%s, %s) entry = %q, want %q", tt.subject, tt.data, entry, tt.entry)
		}
		if err := h.Process(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"literal", "a", "b"}; !slices.Equal(ran, want) || wrapped != 3 {
		t.Errorf("ran %q with middleware %d times, want %q and 3", ran, wrapped, want)
	}
}

func TestPatternCompare(t *testing.T) {
	t.Parallel()
	// Most specific first, as the router and the rules order them.
	order := []string{"alerts.cpu.high", "alerts.cpu.*", "alerts.cpu.>", "alerts.*.high", "alerts.*.>", "alerts.>", ">"}
	for i := range order {
		for j := range order {
			p, _ := ParsePattern(order[i])
			q, _ := ParsePattern(order[j])
			if got := p.Compare(q); (got < 0) != (i < j) || (got == 0) != (i == j) {
				t.Errorf("Compare(%s, %s) = %d", order[i], order[j], got)
			}
		}
	}
}
