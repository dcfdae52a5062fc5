package processor

import (
	"context"
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
		if _, got := r.Handler(tt.subject); got != tt.want {
			t.Errorf("Handler(%q) pattern = %q, want %q", tt.subject, got, tt.want)
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

func TestValidSubject(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"alerts.cpu": true, "alerts": true, "alerts.*": false, "alerts.>": false,
		"": false, "a..b": false, "a b": false, "alerts.": false,
	} {
		if got := ValidSubject(s); got != want {
			t.Errorf("ValidSubject(%q) = %v, want %v", s, got, want)
		}
	}
}
