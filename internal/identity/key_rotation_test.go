package identity_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/identity"
	"github.com/keygate/keygate/internal/store/bolt"
	"github.com/keygate/keygate/internal/testkit"
)

// kidOf returns the kid in a token's header.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// TestSigningKeyRotation rotates the signing key: the new key is published
// before it signs, signs from its activation while tokens of the old one
// stay valid, and the old key is retired once they have all expired. A
// second authority on the same store, as another replica, follows each
// step.
func TestSigningKeyRotation(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "keygate.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := testkit.NewClock(time.Now())
	sealer := newSealer(t)
	a := newFixtureAt(t, st, sealer, clock.Now)
	b := newFixtureAt(t, st, sealer, clock.Now) // another replica
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go b.auth.Run(ctx)

	sp, _ := a.newPrincipal(t)
	issue := func(f *fixture) string {
		t.Helper()
		tok, _, err := f.auth.IssueToken(sp, vaultAudience)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	old := issue(a)
	oldKID := kidOf(t, old)

	// Published at once, in both, but not signing yet.
	info, err := a.auth.RotateSigningKey(t.Context(), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { _, ok := b.auth.PublicKey(info.KID); return ok })
	if kid := kidOf(t, issue(b)); kid != oldKID {
		t.Errorf("before activation the replica signs with %s, want the old key %s", kid, oldKID)
	}

	// After activation both sign with the new key; the old token is good.
	clock.Advance(11 * time.Minute)
	for _, f := range []*fixture{a, b} {
		if kid := kidOf(t, issue(f)); kid != info.KID {
			t.Errorf("after activation a token is signed by %s, want %s", kid, info.KID)
		}
	}
	// The replica checks it with its own keys (the fixtures' issuers
	// differ only because each listens on a port of its own).
	v := authz.NewVerifier(authz.VerifierConfig{Issuer: a.auth.Issuer(), TenantID: b.auth.TenantID(),
		Audiences: []string{vaultAudience}, Keys: b.auth, Now: clock.Now})
	if _, err := v.Verify(old); err != nil {
		t.Errorf("a token of the old key after rotation: %v", err)
	}

	// Once the old key's tokens have expired, the next rotation retires
	// it, and the replica drops it too.
	clock.Advance(identity.DefaultTokenLifetime + 10*time.Minute)
	if _, err := a.auth.RotateSigningKey(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { _, ok := b.auth.PublicKey(oldKID); return !ok })
	if _, ok := a.auth.PublicKey(info.KID); !ok {
		t.Error("the key that signed until now was retired with the old one")
	}
	keys, _ := b.auth.SigningKeys()
	if len(keys) != 2 || !keys[1].Active {
		t.Errorf("replica's keys after the second rotation = %+v, want 2, the newest active", keys)
	}
}

// TestScheduledRotationHappensOnce runs two authorities on one store with
// a rotation interval, as two replicas: when the interval has passed,
// exactly one new key appears.
func TestScheduledRotationHappensOnce(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "keygate.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := testkit.NewClock(time.Now())
	sealer := newSealer(t)
	var fs []*fixture
	for range 2 {
		f := newFixtureWith(t, st, sealer, func(c *identity.Config) {
			c.Now = clock.Now
			c.KeyRotationInterval = 24 * time.Hour
		})
		fs = append(fs, f)
	}
	clock.Advance(25 * time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Go(func() { f.auth.Run(ctx) })
	}
	waitUntil(t, func() bool { k, _ := fs[0].auth.SigningKeys(); return len(k) >= 2 })
	time.Sleep(100 * time.Millisecond) // room for a second rotation, were there one
	cancel()
	wg.Wait()
	for i, f := range fs {
		keys, _ := f.auth.SigningKeys()
		if len(keys) != 2 {
			t.Errorf("authority %d has %d keys after one interval, want 2", i, len(keys))
		}
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("condition not met in 5s")
}
