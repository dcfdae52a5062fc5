package processor

import (
	"strings"
	"testing"
)

// matchReference is the obvious, allocating implementation of NATS subject
// matching that Pattern.Match must agree with.
func matchReference(pattern []string, subject string) bool {
	if subject == "" {
		return false
	}
	toks := strings.Split(subject, ".")
	for _, t := range toks {
		if t == "" {
			return false
		}
	}
	for i, p := range pattern {
		if p == ">" {
			return len(toks) > i
		}
		if i >= len(toks) || (p != "*" && p != toks[i]) {
			return false
		}
	}
	return len(toks) == len(pattern)
}

func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"alerts.>", "alerts.cpu.high"},
		{"alerts.*", "alerts.cpu"},
		{"alerts.*.high", "alerts.mem.high"},
		{"*.>", "a"},
		{">", "a.b.c"},
		{"alerts.cpu", "alerts.cpu."},
		{"a.*", "a..b"},
		{"a.b", "a.b.c"},
		{"a.b.c", "a.b"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, subject string) {
		p, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		if got, want := p.Match(subject), matchReference(p.tokens, subject); got != want {
			t.Fatalf("match(%q, %q) = %v, reference says %v", pattern, subject, got, want)
		}
	})
}
