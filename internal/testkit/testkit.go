// Package testkit holds the small helpers that tests across keygate's
// packages share: a clock a test moves by hand, a buffer that logs are
// written to while a test reads them, and a destination that runs out of
// space on demand. Only tests import it.
package testkit

import (
	"strings"
	"sync"
	"time"
)

// Clock is a settable clock, shared by a test and the servers it starts.
// It is safe for concurrent use; the zero value is not usable, use
// NewClock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock that reads t until it is advanced.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Buffer collects what is written to it, such as a server's logs, for a
// test to search while the server runs. It is safe for concurrent use,
// and its zero value is empty and ready.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
