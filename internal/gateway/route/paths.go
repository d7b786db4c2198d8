package route

import "strings"

// PathMap picks a target by URL path: the first rule, in file order, with
// a pattern that matches, else the default. Patterns are exact paths or
// end in '*' to match every path that starts with what precedes it; case
// is ignored, as Application Gateway v2 does. A PathMap is immutable and
// safe for concurrent use.
type PathMap[T any] struct {
	rules   []pathPattern[T]
	Default T
}

type pathPattern[T any] struct {
	prefix bool
	text   string
	target T
}

// Add appends a rule matching any of paths.
func (m *PathMap[T]) Add(paths []string, target T) {
	for _, p := range paths {
		pp := pathPattern[T]{text: strings.ToLower(p), target: target}
		if strings.HasSuffix(p, "*") {
			pp.prefix, pp.text = true, strings.ToLower(strings.TrimSuffix(p, "*"))
		}
		m.rules = append(m.rules, pp)
	}
}

// Match returns the target for path (the URL's path, without query).
func (m *PathMap[T]) Match(path string) T {
	for _, r := range m.rules {
		if r.prefix && hasPrefixFold(path, r.text) || !r.prefix && strings.EqualFold(path, r.text) {
			return r.target
		}
	}
	return m.Default
}

// Patterns returns each rule's pattern (with its '*') and target, in
// match order, then "" and the default.
func (m *PathMap[T]) Patterns() ([]string, []T) {
	var pats []string
	var targets []T
	for _, r := range m.rules {
		p := r.text
		if r.prefix {
			p += "*"
		}
		pats = append(pats, p)
		targets = append(targets, r.target)
	}
	return append(pats, ""), append(targets, m.Default)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
