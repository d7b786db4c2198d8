package authz_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/internal/authz"
)

const (
	testIssuer   = "https://127.0.0.1:8443/0d9e7c1a-5b2f-4c3e-9a8d-6f1e2b3c4d5e/v2.0"
	testTenant   = "0d9e7c1a-5b2f-4c3e-9a8d-6f1e2b3c4d5e"
	testAudience = "https://vault.example:8443"
	testKID      = "key-1"
)

// keySet is a fixed authz.KeySet.
type keySet map[string]crypto.PublicKey

func (ks keySet) PublicKey(kid string) (crypto.PublicKey, bool) {
	k, ok := ks[kid]
	return k, ok
}

// clock is a clock the test drives. It is safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// fixture is a verifier with its key, clock and key set.
type fixture struct {
	key   *ecdsa.PrivateKey
	keys  keySet
	clock *clock
	v     *authz.Verifier
}

func newFixture(t testing.TB, cacheSize int) *fixture {
	t.Helper()
	f := &fixture{key: newKey(t), clock: newClock()}
	f.keys = keySet{testKID: &f.key.PublicKey}
	f.v = authz.NewVerifier(authz.VerifierConfig{
		Issuer:    testIssuer,
		TenantID:  testTenant,
		Audiences: []string{"https://other.example", testAudience},
		Keys:      f.keys,
		Now:       f.clock.Now,
		CacheSize: cacheSize,
	})
	return f
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating key: %v", err)
	}
	return k
}

// claims returns the claims of a good token issued at the clock's time.
func (f *fixture) claims() jwt.MapClaims {
	now := f.clock.Now()
	return jwt.MapClaims{
		"iss":   testIssuer,
		"aud":   testAudience,
		"tid":   testTenant,
		"oid":   "obj-1",
		"sub":   "obj-1",
		"azp":   "client-1",
		"appid": "client-1",
		"roles": []string{authz.RoleAdmin},
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
		"ver":   "2.0",
	}
}

// sign signs claims with ES256 under testKID.
func sign(t testing.TB, key *ecdsa.PrivateKey, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = testKID
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing token: %v", err)
	}
	return s
}

func TestVerifyGood(t *testing.T) {
	f := newFixture(t, 0)
	tok := sign(t, f.key, f.claims())
	want := authz.Principal{
		TenantID: testTenant,
		ObjectID: "obj-1",
		ClientID: "client-1",
		Roles:    []string{authz.RoleAdmin},
		Expires:  f.clock.Now().Add(time.Hour).Truncate(time.Second),
	}
	// The second call is served from the cache and must agree.
	for _, pass := range []string{"fresh", "cached"} {
		got, err := f.v.Verify(tok)
		if err != nil {
			t.Fatalf("%s: Verify: %v", pass, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: principal (-want +got):\n%s", pass, diff)
		}
		if !got.HasRole(authz.RoleAdmin) {
			t.Errorf("%s: HasRole(%q) = false, want true", pass, authz.RoleAdmin)
		}
	}
}

func TestVerifyAppIDWithoutAZP(t *testing.T) {
	f := newFixture(t, 0)
	c := f.claims()
	delete(c, "azp")
	c["aud"] = []string{"https://unrelated.example", testAudience}
	got, err := f.v.Verify(sign(t, f.key, c))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.ClientID != "client-1" {
		t.Errorf("ClientID = %q, want %q", got.ClientID, "client-1")
	}
}

func TestVerifyRefuses(t *testing.T) {
	f := newFixture(t, 0)
	foreign := newKey(t)
	der, err := x509.MarshalPKIXPublicKey(&f.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	with := func(k string, v any) jwt.MapClaims {
		c := f.claims()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	noClient := with("azp", nil)
	delete(noClient, "appid")
	now := f.clock.Now()

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"expired", sign(t, f.key, with("exp", now.Add(-2*time.Minute).Unix())), authz.ErrTokenExpired},
		{"not yet valid", sign(t, f.key, with("nbf", now.Add(2*time.Minute).Unix())), authz.ErrTokenNotYetValid},
		{"issued in the future", sign(t, f.key, with("iat", now.Add(2*time.Minute).Unix())), authz.ErrTokenNotYetValid},
		{"no exp", sign(t, f.key, with("exp", nil)), authz.ErrTokenInvalid},
		{"wrong audience", sign(t, f.key, with("aud", "https://elsewhere.example")), authz.ErrWrongAudience},
		{"no audience", sign(t, f.key, with("aud", nil)), authz.ErrTokenInvalid},
		{"wrong tenant", sign(t, f.key, with("tid", "11111111-2222-3333-4444-555555555555")), authz.ErrWrongTenant},
		{"wrong issuer", sign(t, f.key, with("iss", "https://127.0.0.1:9999/x/v2.0")), authz.ErrTokenInvalid},
		{"no oid", sign(t, f.key, with("oid", nil)), authz.ErrTokenInvalid},
		{"no client id", sign(t, f.key, noClient), authz.ErrTokenInvalid},
		{"foreign key, same kid", sign(t, foreign, f.claims()), authz.ErrTokenInvalid},
		{"unknown kid", signKID(t, f.key, f.claims(), "key-2"), authz.ErrTokenInvalid},
		{"no kid", signKID(t, f.key, f.claims(), ""), authz.ErrTokenInvalid},
		{"alg none", signNone(t, f.claims()), authz.ErrTokenInvalid},
		{"HS256 keyed with the public key", signHS256(t, der, f.claims()), authz.ErrTokenInvalid},
		{"garbage", "not.a.token", authz.ErrTokenInvalid},
		{"empty", "", authz.ErrTokenInvalid},
		{"two segments", "eyJhbGciOiJFUzI1NiJ9.e30", authz.ErrTokenInvalid},
		{"huge", strings.Repeat("a", 20000), authz.ErrTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Twice: a refusal must never be cached as a success.
			for range 2 {
				p, err := f.v.Verify(tt.token)
				if !errors.Is(err, tt.want) {
					t.Fatalf("Verify error = %v, want %v", err, tt.want)
				}
				if p.ObjectID != "" {
					t.Errorf("Verify returned principal %+v with error", p)
				}
				if strings.Contains(err.Error(), tt.token) && tt.token != "" {
					t.Errorf("error %q echoes the token", err)
				}
			}
		})
	}
}

func signKID(t *testing.T, key *ecdsa.PrivateKey, claims jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing token: %v", err)
	}
	return s
}

func signNone(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
	tok.Header["kid"] = testKID
	s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatalf("signing token: %v", err)
	}
	return s
}

func signHS256(t *testing.T, secret []byte, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = testKID
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatalf("signing token: %v", err)
	}
	return s
}

// TestVerifyCacheFollowsClock drives the clock across a cached token's
// lifetime: the cached answer must change exactly where a fresh
// verification's would.
func TestVerifyCacheFollowsClock(t *testing.T) {
	cached := newFixture(t, 0)
	uncached := newFixture(t, -1)
	uncached.key, uncached.keys[testKID] = cached.key, &cached.key.PublicKey
	start := cached.clock.Now()
	tok := sign(t, cached.key, cached.claims())
	exp := start.Add(time.Hour)

	steps := []struct {
		name string
		at   time.Time
		want error
	}{
		{"issued", start, nil},
		{"half-life", start.Add(30 * time.Minute), nil},
		{"at exp, within leeway", exp, nil},
		{"last instant of leeway", exp.Add(authz.DefaultLeeway - time.Nanosecond), nil},
		{"leeway over", exp.Add(authz.DefaultLeeway), authz.ErrTokenExpired},
		{"long after", exp.Add(24 * time.Hour), authz.ErrTokenExpired},
		{"clock set back before nbf", start.Add(-2 * time.Minute), authz.ErrTokenNotYetValid},
		{"clock back to valid", start.Add(time.Minute), nil},
	}
	for _, s := range steps {
		cached.clock.Set(s.at)
		uncached.clock.Set(s.at)
		p, got := cached.v.Verify(tok)
		_, fresh := uncached.v.Verify(tok)
		if (got == nil) != (p.ObjectID != "") {
			t.Errorf("%s: cached Verify returned principal %+v with error %v", s.name, p, got)
		}
		if !errors.Is(got, s.want) || (s.want == nil && got != nil) {
			t.Errorf("%s: cached Verify error = %v, want %v", s.name, got, s.want)
		}
		if !errors.Is(fresh, s.want) || (s.want == nil && fresh != nil) {
			t.Errorf("%s: uncached Verify error = %v, want %v", s.name, fresh, s.want)
		}
	}
}

// TestVerifyCacheDropsWithdrawnKey checks that a cached token stops
// verifying once its signing key leaves the key set.
func TestVerifyCacheDropsWithdrawnKey(t *testing.T) {
	f := newFixture(t, 0)
	tok := sign(t, f.key, f.claims())
	if _, err := f.v.Verify(tok); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	delete(f.keys, testKID)
	if _, err := f.v.Verify(tok); !errors.Is(err, authz.ErrTokenInvalid) {
		t.Fatalf("Verify after key withdrawn: error = %v, want %v", err, authz.ErrTokenInvalid)
	}
}

func TestVerifyConcurrent(t *testing.T) {
	f := newFixture(t, 8)
	var toks []string
	for i := range 32 {
		c := f.claims()
		c["oid"] = "obj-" + string(rune('a'+i))
		toks = append(toks, sign(t, f.key, c))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				tok := toks[(g*7+i)%len(toks)]
				if _, err := f.v.Verify(tok); err != nil {
					t.Errorf("Verify: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestNewVerifierPanicsOnMissingConfig(t *testing.T) {
	good := authz.VerifierConfig{
		Issuer: testIssuer, TenantID: testTenant,
		Audiences: []string{testAudience}, Keys: keySet{},
	}
	tests := []struct {
		name   string
		change func(*authz.VerifierConfig)
	}{
		{"no issuer", func(c *authz.VerifierConfig) { c.Issuer = "" }},
		{"no tenant", func(c *authz.VerifierConfig) { c.TenantID = "" }},
		{"no audiences", func(c *authz.VerifierConfig) { c.Audiences = nil }},
		{"no keys", func(c *authz.VerifierConfig) { c.Keys = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			defer func() {
				if recover() == nil {
					t.Error("NewVerifier did not panic")
				}
			}()
			authz.NewVerifier(cfg)
		})
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	f := newFixture(b, 0)
	tok := sign(b, f.key, f.claims())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCachedParallel(b *testing.B) {
	f := newFixture(b, 0)
	tok := sign(b, f.key, f.claims())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.v.Verify(tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkVerifyUncached(b *testing.B) {
	f := newFixture(b, -1)
	tok := sign(b, f.key, f.claims())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzVerify checks that no input crashes Verify and that nothing but the
// one genuine token verifies.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, 0)
	good := sign(f, fx.key, fx.claims())
	f.Add(good)
	f.Add(good[:len(good)-2])
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		_, err := fx.v.Verify(tok)
		if err == nil && tok != good {
			t.Errorf("Verify accepted a token that is not the genuine one: %q", tok)
		}
	})
}
