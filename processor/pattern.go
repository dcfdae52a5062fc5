package processor

import (
	"fmt"
	"slices"
	"strings"
)

// Pattern is a parsed subject pattern: dot-separated non-empty tokens
// without white space, where a "*" token matches one token and a last ">"
// token one or more. It is the one matcher of reactor: the Router, the
// rules of a handlers config, and the filters of Config and ReplayConfig all
// parse their patterns with ParsePattern. The zero Pattern matches nothing.
type Pattern struct {
	text   string
	tokens []string
	rank   []int8
}

// Token ranks: lower is more specific.
const (
	rankLiteral int8 = iota
	rankStar
	rankTail
)

// ParsePattern parses and checks a subject pattern.
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("empty pattern")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return Pattern{}, fmt.Errorf("invalid pattern %q: contains whitespace", s)
	}
	tokens := strings.Split(s, ".")
	rank := make([]int8, len(tokens))
	for i, tok := range tokens {
		switch {
		case tok == "":
			return Pattern{}, fmt.Errorf("invalid pattern %q: empty token", s)
		case tok == ">":
			if i != len(tokens)-1 {
				return Pattern{}, fmt.Errorf("invalid pattern %q: \">\" must be the last token", s)
			}
			rank[i] = rankTail
		case tok == "*":
			rank[i] = rankStar
		case strings.ContainsAny(tok, "*>"):
			return Pattern{}, fmt.Errorf("invalid pattern %q: wildcard inside token %q", s, tok)
		default:
			rank[i] = rankLiteral
		}
	}
	return Pattern{text: s, tokens: tokens, rank: rank}, nil
}

// String is the pattern as written.
func (p Pattern) String() string { return p.text }

// Wildcard reports whether p has a "*" or ">" token: a subject to publish on
// is a valid pattern without one.
func (p Pattern) Wildcard() bool {
	return slices.ContainsFunc(p.rank, func(k int8) bool { return k != rankLiteral })
}

// Match reports whether subject matches p. It does not allocate.
func (p Pattern) Match(subject string) bool {
	for i, tok := range p.tokens {
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
			return i == len(p.tokens)-1
		}
		subject = rest
	}
	return false // the subject has more tokens than the pattern
}

// validTail reports whether s is one or more non-empty tokens.
func validTail(s string) bool {
	return s != "" && s[0] != '.' && s[len(s)-1] != '.' && !strings.Contains(s, "..")
}

// Compare orders patterns by specificity, the order in which they get a
// subject both match: negative when p is more specific than q. Comparing
// token by token from the left, a literal beats "*", which beats ">"; so
// "alerts.cpu.*" comes before "alerts.*.high", which comes before
// "alerts.>". Patterns of equal rank compare 0, whatever their literals.
func (p Pattern) Compare(q Pattern) int { return slices.Compare(p.rank, q.rank) }
