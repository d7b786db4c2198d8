// Package hostmatch implements the host name patterns of Application
// Gateway's multi-site listeners: letters, digits, '-' and '.', with '*'
// matching any run of those (dots included: *.contoso.com matches
// a.b.contoso.com) and '?' matching one. Matching ignores case.
package hostmatch

import (
	"errors"
	"fmt"
	"strings"
)

// IsWildcard reports whether pattern has a wildcard character.
func IsWildcard(pattern string) bool {
	return strings.ContainsAny(pattern, "*?")
}

// Validate checks pattern against the rules Application Gateway applies:
// allowed characters; one '*' per label; at most two '*' and four
// wildcard characters in all; no '*' next to another wildcard.
func Validate(pattern string) error {
	if pattern == "" {
		return errors.New("empty host name")
	}
	if len(pattern) > 253 {
		return errors.New("longer than 253 characters")
	}
	stars, wild := 0, 0
	for _, label := range strings.Split(pattern, ".") {
		if label == "" {
			return fmt.Errorf("%q has an empty label", pattern)
		}
		if strings.Count(label, "*") > 1 {
			return fmt.Errorf("%q: '*' may appear only once in a label", pattern)
		}
		if strings.Contains(label, "*?") || strings.Contains(label, "?*") {
			return fmt.Errorf("%q: '*' may not stand next to '?'", pattern)
		}
		for _, r := range label {
			switch {
			case r == '*':
				stars++
				wild++
			case r == '?':
				wild++
			case r == '-', r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			default:
				return fmt.Errorf("%q: %q is not allowed (letters, digits, '-', '.', '*', '?')", pattern, r)
			}
		}
	}
	if stars > 2 {
		return fmt.Errorf("%q: at most two '*' in a host name", pattern)
	}
	if wild > 4 {
		return fmt.Errorf("%q: at most four wildcard characters in a host name", pattern)
	}
	return nil
}

// Match reports whether host matches pattern. host may carry a port and a
// trailing dot, as Host headers do; both are ignored.
func Match(pattern, host string) bool {
	return match(strings.ToLower(pattern), Normalize(host))
}

// Normalize lower-cases host and strips a port and a trailing dot.
func Normalize(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.TrimPrefix(strings.TrimSuffix(host, "]"), "[")
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// match is a glob match over lower-case strings; '*' takes one or more
// characters.
func match(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := 1; i <= len(s); i++ {
				if match(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
		default:
			if len(s) == 0 || s[0] != p[0] {
				return false
			}
		}
		p, s = p[1:], s[1:]
	}
	return len(s) == 0
}
