package authz

import (
	"sync"
	"time"
)

// cacheEntry is what a successful verification of one token established.
type cacheEntry struct {
	principal Principal
	kid       string    // key that signed the token
	validFrom time.Time // the later of nbf and iat
	expires   time.Time // exp
}

// check reports whether the entry's token is usable at now, by the same
// rules, leeway included, as the jwt parser applies.
func (e *cacheEntry) check(now time.Time, leeway time.Duration) error {
	if e.expired(now, leeway) {
		return ErrTokenExpired
	}
	if now.Before(e.validFrom.Add(-leeway)) {
		return ErrTokenNotYetValid
	}
	return nil
}

// expired reports whether the entry's token has expired at now.
func (e *cacheEntry) expired(now time.Time, leeway time.Duration) bool {
	return !now.Before(e.expires.Add(leeway))
}

// tokenCache remembers verified tokens by the SHA-256 of their text, so
// that the cache holds no bearer token. It is safe for concurrent use.
//
// Reads, the common case, share a read lock. With the two to four cores a
// vault typically has, one RWMutex is not contended enough to be worth
// sharding.
type tokenCache struct {
	max int

	mu      sync.RWMutex
	entries map[[32]byte]cacheEntry
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{max: size, entries: make(map[[32]byte]cacheEntry)}
}

// get returns the entry for key, expired or not.
func (c *tokenCache) get(key [32]byte) (cacheEntry, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	return e, ok
}

// remove forgets key.
func (c *tokenCache) remove(key [32]byte) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}

// put remembers e under key, making room first when the cache is full.
func (c *tokenCache) put(key [32]byte, e cacheEntry, now time.Time, leeway time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		c.evict(now, leeway)
	}
	c.entries[key] = e
}

// evict drops every expired entry and then, if that freed less than an
// eighth of the cache, arbitrary entries up to that eighth. Freeing a
// fraction at a time keeps the cost of the sweep, linear in the size of
// the cache, to a constant per insertion. Go's random map order makes
// "arbitrary" fair without bookkeeping; an evicted token that comes back
// is only verified again.
func (c *tokenCache) evict(now time.Time, leeway time.Duration) {
	for k, e := range c.entries {
		if e.expired(now, leeway) {
			delete(c.entries, k)
		}
	}
	target := c.max - max(c.max/8, 1)
	for k := range c.entries {
		if len(c.entries) <= target {
			break
		}
		delete(c.entries, k)
	}
}

// size returns the number of entries, for tests.
func (c *tokenCache) size() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
