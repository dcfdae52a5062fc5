package processor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Router dispatches each message to the handler whose pattern matches its
// subject. Patterns use NATS wildcards: "*" matches one token, ">" (last token
// only) matches one or more. When several patterns match, the most specific
// wins: comparing token by token from the left, a literal beats "*", which
// beats ">". So for "alerts.cpu.high", "alerts.cpu.*" wins over "alerts.*.high",
// which wins over "alerts.>". An exact literal pattern always wins.
//
// A Router is itself a Handler. Register routes before processing starts;
// registration is safe for concurrent use but meant for setup.
type Router struct {
	mu       sync.RWMutex
	literal  map[string]*route
	wildcard []*route // sorted most specific first
	mws      []Middleware
}

type route struct {
	pattern string
	tokens  []string
	rank    []int8
	h       Handler // as registered
	wrapped Handler // h with the router's middleware
}

// Token ranks: lower is more specific.
const (
	rankLiteral int8 = iota
	rankStar
	rankTail
)

// NewRouter returns an empty Router.
func NewRouter() *Router {
	return &Router{literal: make(map[string]*route)}
}

// Handle registers h for pattern. It panics if the pattern is invalid, h is
// nil, or the pattern is already registered, as http.ServeMux does.
func (r *Router) Handle(pattern string, h Handler) {
	if h == nil {
		panic("processor: nil handler for " + pattern)
	}
	tokens, rank, err := parsePattern(pattern)
	if err != nil {
		panic("processor: " + err.Error())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lookupExact(pattern) != nil {
		panic(fmt.Sprintf("processor: multiple registrations for %q", pattern))
	}
	rt := &route{pattern: pattern, tokens: tokens, rank: rank, h: h, wrapped: r.wrap(h)}
	if !slices.ContainsFunc(rank, func(k int8) bool { return k != rankLiteral }) {
		r.literal[pattern] = rt
		return
	}
	r.wildcard = append(r.wildcard, rt)
	slices.SortStableFunc(r.wildcard, func(a, b *route) int { return slices.Compare(a.rank, b.rank) })
}

// On registers fn for pattern: r.On("alerts.terminator_detected", fn).
func (r *Router) On(pattern string, fn func(ctx context.Context, m *Message) error) {
	r.Handle(pattern, HandlerFunc(fn))
}

// Use appends middleware to every route, registered before or after.
// The first middleware given is the outermost.
func (r *Router) Use(mws ...Middleware) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mws = append(r.mws, mws...)
	for _, rt := range r.literal {
		rt.wrapped = r.wrap(rt.h)
	}
	for _, rt := range r.wildcard {
		rt.wrapped = r.wrap(rt.h)
	}
}

func (r *Router) wrap(h Handler) Handler {
	for i := len(r.mws) - 1; i >= 0; i-- {
		h = r.mws[i](h)
	}
	return h
}

func (r *Router) lookupExact(pattern string) *route {
	if rt, ok := r.literal[pattern]; ok {
		return rt
	}
	for _, rt := range r.wildcard {
		if rt.pattern == pattern {
			return rt
		}
	}
	return nil
}

// Process runs the handler registered for m's subject, with the router's
// middleware. With no matching pattern it returns Permanent(ErrNoHandler).
func (r *Router) Process(ctx context.Context, m *Message) error {
	h, _ := r.Handler(m.Subject())
	return h.Process(ctx, m)
}

// Handler returns the handler for subject, wrapped in the router's
// middleware, and the pattern it was registered with: one match for both,
// as http.ServeMux.Handler. With no matching pattern it returns a handler
// that fails with Permanent(ErrNoHandler), and an empty pattern.
func (r *Router) Handler(subject string) (h Handler, pattern string) {
	if rt := r.match(subject); rt != nil {
		return rt.wrapped, rt.pattern
	}
	return noHandler, ""
}

// noHandler is the handler of subjects no pattern matches.
var noHandler = HandlerFunc(func(_ context.Context, m *Message) error {
	return Permanent(fmt.Errorf("%w for subject %q", ErrNoHandler, m.Subject()))
})

// Patterns lists the registered patterns, most specific first.
func (r *Router) Patterns() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.literal)+len(r.wildcard))
	for p := range r.literal {
		out = append(out, p)
	}
	slices.Sort(out)
	for _, rt := range r.wildcard {
		out = append(out, rt.pattern)
	}
	return out
}

func (r *Router) match(subject string) *route {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if rt, ok := r.literal[subject]; ok {
		return rt
	}
	for _, rt := range r.wildcard {
		if matchTokens(rt.tokens, subject) {
			return rt
		}
	}
	return nil
}

// matchTokens reports whether subject matches the pattern tokens, without
// allocating.
func matchTokens(tokens []string, subject string) bool {
	for i, tok := range tokens {
		if subject == "" {
			return false
		}
		if tok == ">" {
			return validTail(subject)
		}
		head, rest, more := subject, "", false
		if j := strings.IndexByte(subject, '.'); j >= 0 {
			head, rest, more = subject[:j], subject[j+1:], true
		}
		if head == "" || (more && rest == "") || (tok != "*" && tok != head) {
			return false
		}
		if !more {
			return i == len(tokens)-1
		}
		subject = rest
	}
	return false // the subject has more tokens than the pattern
}

// validTail reports whether s is one or more non-empty tokens.
func validTail(s string) bool {
	return s != "" && s[0] != '.' && s[len(s)-1] != '.' && !strings.Contains(s, "..")
}

// parsePattern validates a subject pattern and returns its tokens and ranks.
func parsePattern(pattern string) ([]string, []int8, error) {
	if pattern == "" {
		return nil, nil, fmt.Errorf("empty pattern")
	}
	if strings.ContainsAny(pattern, " \t\r\n") {
		return nil, nil, fmt.Errorf("invalid pattern %q: contains whitespace", pattern)
	}
	tokens := strings.Split(pattern, ".")
	rank := make([]int8, len(tokens))
	for i, tok := range tokens {
		switch {
		case tok == "":
			return nil, nil, fmt.Errorf("invalid pattern %q: empty token", pattern)
		case tok == ">":
			if i != len(tokens)-1 {
				return nil, nil, fmt.Errorf("invalid pattern %q: \">\" must be the last token", pattern)
			}
			rank[i] = rankTail
		case tok == "*":
			rank[i] = rankStar
		case strings.ContainsAny(tok, "*>"):
			return nil, nil, fmt.Errorf("invalid pattern %q: wildcard inside token %q", pattern, tok)
		default:
			rank[i] = rankLiteral
		}
	}
	return tokens, rank, nil
}
