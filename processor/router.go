package processor

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Router dispatches each message to the handler whose pattern matches its
// subject. Patterns use NATS wildcards: "*" matches one token, ">" (last token
// only) matches one or more. When several patterns match, the most specific
// wins: comparing token by token from the left, a literal beats "*", which
// beats ">". So for "alerts.cpu.high", "alerts.cpu.*" wins over "alerts.*.high",
// which wins over "alerts.>". An exact literal pattern always wins.
//
// A Router is a Mux: the processor asks it which pattern takes each message
// and names that pattern, the entry, in its logs and metrics. A handler
// registered on a Router may be a Mux itself (the rules of a handlers
// config): the Router then hands it the messages its pattern matches, and
// the inner Mux's entry names them.
//
// Register routes before processing starts; registration is safe for
// concurrent use but meant for setup.
type Router struct {
	mu       sync.RWMutex
	literal  map[string]*route
	wildcard []*route // sorted most specific first
	mws      []Middleware
}

type route struct {
	pattern Pattern
	h       Handler // as registered
	wrapped Handler // h with the router's middleware
	mux     Mux     // h, when it routes further
}

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
	p, err := ParsePattern(pattern)
	if err != nil {
		panic("processor: " + err.Error())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lookupExact(pattern) != nil {
		panic(fmt.Sprintf("processor: multiple registrations for %q", pattern))
	}
	rt := &route{pattern: p, h: h, wrapped: r.wrap(h)}
	rt.mux, _ = h.(Mux)
	if !p.Wildcard() {
		r.literal[pattern] = rt
		return
	}
	r.wildcard = append(r.wildcard, rt)
	slices.SortStableFunc(r.wildcard, func(a, b *route) int { return a.pattern.Compare(b.pattern) })
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
		if rt.pattern.String() == pattern {
			return rt
		}
	}
	return nil
}

// Process runs the handler of the entry that takes m (see Route). With no
// matching pattern it returns Permanent(ErrNoHandler).
func (r *Router) Process(ctx context.Context, m *Message) error {
	h, _ := r.Route(m)
	return h.Process(ctx, m)
}

// Route returns the handler for m, wrapped in the router's middleware, and
// the entry that takes m: the pattern registered with it, or the entry of
// the Mux registered there. With no matching pattern it returns a handler
// that fails with Permanent(ErrNoHandler), and an empty entry.
func (r *Router) Route(m *Message) (h Handler, entry string) {
	rt := r.match(m.Subject())
	switch {
	case rt == nil:
		return noHandler, ""
	case rt.mux != nil:
		h, entry = rt.mux.Route(m)
		r.mu.RLock()
		defer r.mu.RUnlock()
		return r.wrap(h), entry
	}
	return rt.wrapped, rt.pattern.String()
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
		out = append(out, rt.pattern.String())
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
		if rt.pattern.Match(subject) {
			return rt
		}
	}
	return nil
}
