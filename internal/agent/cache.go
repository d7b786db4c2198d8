package agent

import (
	"strings"
	"sync"
	"time"
)

// expiryMargin is how close to its expiry a cached token is no longer
// handed out: a client needs a moment to use it.
const expiryMargin = 30 * time.Second

// cachedToken is a token the authority issued, with what the agent tells
// clients about it. It is secret: nothing prints it.
type cachedToken struct {
	token    string
	issued   time.Time // when the agent received it
	expires  time.Time
	resource string
	clientID string
	name     string // the identity's name, for logs
}

// String keeps the token out of any formatted output.
func (t cachedToken) String() string { return "token of " + t.name + " (redacted)" }

// fresh reports whether the token is young enough to hand out without
// asking the authority: less than half its life gone, as MSAL refreshes.
func (t cachedToken) fresh(now time.Time) bool {
	return now.Before(t.issued.Add(t.expires.Sub(t.issued) / 2))
}

// usable reports whether the token may still be handed out at all.
func (t cachedToken) usable(now time.Time) bool {
	return now.Before(t.expires.Add(-expiryMargin))
}

// tokenCache holds the latest token per identity and resource. It is safe
// for concurrent use.
type tokenCache struct {
	mu     sync.Mutex
	tokens map[cacheKey]cachedToken
}

type cacheKey struct{ clientID, resource string }

func newTokenCache() *tokenCache {
	return &tokenCache{tokens: make(map[cacheKey]cachedToken)}
}

// key is the cache key of a token: client ids and resources compare
// without regard to case, and a resource without its trailing slash, as
// the authority compares them.
func key(clientID, resource string) cacheKey {
	return cacheKey{strings.ToLower(clientID), strings.ToLower(strings.TrimSuffix(resource, "/"))}
}

func (c *tokenCache) get(clientID, resource string) (cachedToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tokens[key(clientID, resource)]
	return t, ok
}

func (c *tokenCache) put(t cachedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens[key(t.clientID, t.resource)] = t
}

// forget drops every token of the identity with clientID.
func (c *tokenCache) forget(clientID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.tokens {
		if k.clientID == strings.ToLower(clientID) {
			delete(c.tokens, k)
		}
	}
}

// clear drops every token.
func (c *tokenCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.tokens)
}
