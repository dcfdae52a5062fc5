package processor

import "slices"

// CheckPattern reports why pattern is not a valid subject pattern, or nil:
// dot-separated non-empty tokens without whitespace, where a "*" token
// matches one token and a last ">" token the rest. Router.Handle, the
// FilterSubjects of Config and ReplayConfig, and a handlers config take such
// patterns. wildcard reports whether it has a "*" or ">": a subject to
// publish on is a valid pattern without one.
func CheckPattern(pattern string) (wildcard bool, err error) {
	_, rank, err := parsePattern(pattern)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(rank, func(k int8) bool { return k != rankLiteral }), nil
}
