package authz

import (
	"testing"
	"time"
)

func cacheKey(i int) [32]byte {
	var k [32]byte
	k[0], k[1] = byte(i), byte(i>>8)
	return k
}

func TestTokenCacheEvictsExpiredFirst(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	c := newTokenCache(16)
	live := cacheEntry{expires: now.Add(time.Hour)}
	dead := cacheEntry{expires: now.Add(-time.Hour)}
	for i := range 16 {
		e := live
		if i%2 == 1 {
			e = dead
		}
		c.put(cacheKey(i), e, now, time.Minute)
	}
	if got := c.size(); got != 16 {
		t.Fatalf("size after filling = %d, want 16", got)
	}

	// The cache is full: the next insertion sweeps the 8 expired entries
	// and nothing else, as that frees more than an eighth.
	c.put(cacheKey(100), live, now, time.Minute)
	if got := c.size(); got != 9 {
		t.Errorf("size after sweep = %d, want 9", got)
	}
	for i := 0; i < 16; i += 2 {
		if _, ok := c.get(cacheKey(i)); !ok {
			t.Errorf("live entry %d was evicted while expired ones existed", i)
		}
	}
}

func TestTokenCacheStaysBounded(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	c := newTokenCache(64)
	e := cacheEntry{expires: now.Add(time.Hour)}
	for i := range 1000 {
		c.put(cacheKey(i), e, now, time.Minute)
		if got := c.size(); got > 64 {
			t.Fatalf("size after %d insertions = %d, want at most 64", i+1, got)
		}
	}
	if _, ok := c.get(cacheKey(999)); !ok {
		t.Error("the newest entry is missing")
	}
}

func TestTokenCacheSizeOne(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	c := newTokenCache(1)
	e := cacheEntry{expires: now.Add(time.Hour)}
	c.put(cacheKey(1), e, now, 0)
	c.put(cacheKey(2), e, now, 0)
	if got := c.size(); got != 1 {
		t.Errorf("size = %d, want 1", got)
	}
	if _, ok := c.get(cacheKey(2)); !ok {
		t.Error("the newest entry is missing")
	}
}
