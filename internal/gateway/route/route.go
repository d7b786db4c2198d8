// Package route decides where a request goes: which listener of a port
// takes a host name (for the TLS certificate by SNI and for the request by
// its Host header), and which backend or redirect a listener's rule picks
// for a path.
package route

import (
	"sort"
	"strings"

	"github.com/keygate/keygate/internal/gateway/hostmatch"
)

// Listener is a listener of a port as routing sees it. Value is whatever
// the caller attaches (the gateway's own listener state).
type Listener[T any] struct {
	Name  string
	Hosts []string

	// Priority is the priority of the listener's routing rule (lower
	// first); 0 sorts after every set priority.
	Priority int

	// RequireSNI refuses handshakes without a server name.
	RequireSNI bool

	Value T
}

// Table selects among the listeners of one port. It is immutable and
// safe for concurrent use.
type Table[T any] struct {
	exact    map[string]*Listener[T]
	wildcard []wildcardEntry[T]
	basic    *Listener[T]

	// fallback is the listener that serves a handshake without a usable
	// server name: the first listener in file order.
	fallback *Listener[T]
}

type wildcardEntry[T any] struct {
	pattern string
	l       *Listener[T]
}

// NewTable indexes listeners, given in file order. Host names are
// expected to be unique across them, as validation ensures.
func NewTable[T any](listeners []*Listener[T]) *Table[T] {
	t := &Table[T]{exact: map[string]*Listener[T]{}}
	for _, l := range listeners {
		if len(l.Hosts) == 0 && t.basic == nil {
			t.basic = l
		}
		for _, h := range l.Hosts {
			if hostmatch.IsWildcard(h) {
				t.wildcard = append(t.wildcard, wildcardEntry[T]{strings.ToLower(h), l})
			} else {
				t.exact[strings.ToLower(h)] = l
			}
		}
		if t.fallback == nil {
			t.fallback = l
		}
	}

	// Among wildcards, the rule with the higher priority wins; file order
	// breaks ties (a stable sort keeps it).
	sort.SliceStable(t.wildcard, func(i, j int) bool {
		return before(t.wildcard[i].l.Priority, t.wildcard[j].l.Priority)
	})
	return t
}

func before(a, b int) bool {
	switch {
	case a == 0:
		return false
	case b == 0:
		return true
	}
	return a < b
}

// ForHost returns the listener for a host name (a Host header or a
// server name): an exact name first, then wildcards by rule priority, then
// the basic listener. Nil when none takes it.
func (t *Table[T]) ForHost(host string) *Listener[T] {
	h := hostmatch.Normalize(host)
	if l, ok := t.exact[h]; ok {
		return l
	}
	for _, w := range t.wildcard {
		if hostmatch.Match(w.pattern, h) {
			return w.l
		}
	}
	return t.basic
}

// ForServerName returns the listener whose certificate a handshake gets:
// the one that takes the server name, or else the first listener of the
// port, as Application Gateway v2 does. Nil when that listener requires
// SNI and none matched.
func (t *Table[T]) ForServerName(name string) *Listener[T] {
	if name != "" {
		if l := t.ForHost(name); l != nil {
			return l
		}
	}
	if t.fallback == nil || t.fallback.RequireSNI {
		return nil
	}
	return t.fallback
}
