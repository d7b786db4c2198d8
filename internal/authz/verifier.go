// Package authz decides who may do what: it verifies the bearer tokens that
// keygate's identity authority issues and checks callers against a vault's
// access policies.
package authz

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// RoleAdmin is the role that marks a principal as an administrator of
// keygate's management plane.
const RoleAdmin = "keygate.admin"

// Defaults of VerifierConfig.
const (
	// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
	// Microsoft's token validators allow five minutes because Entra's
	// tokens are checked by machines anywhere on the internet. keygate's
	// authority and vault normally run in one process or on one
	// NTP-synchronised fleet, so one minute covers real drift while
	// keeping short the time an expired token is still honoured.
	DefaultLeeway = time.Minute

	// DefaultCacheSize is the number of verified tokens kept. Ten thousand
	// covers a large fleet of callers, each of which reuses its token
	// for most of an hour, in a few megabytes of memory.
	DefaultCacheSize = 10000
)

// maxTokenLen bounds the input that Verify hashes and parses. The
// authority's tokens are under 1 KiB; anything far larger is not ours.
const maxTokenLen = 16 << 10

// Errors returned by Verify, wrapped or as they are; check them with
// errors.Is. Their messages are safe to show to the client.
var (
	ErrTokenInvalid     = errors.New("token is invalid")
	ErrTokenExpired     = errors.New("token has expired")
	ErrTokenNotYetValid = errors.New("token is not valid yet")
	ErrWrongAudience    = errors.New("token is for another audience")
	ErrWrongTenant      = errors.New("token is from another tenant")
)

// Principal is an authenticated caller.
type Principal struct {
	TenantID string
	ObjectID string   // oid claim
	ClientID string   // azp claim, or appid when azp is absent
	Roles    []string // roles claim; read-only, it may be shared

	// Expires is when the token that named the principal expires; zero
	// for a principal not read from a token.
	Expires time.Time
}

// HasRole reports whether p holds role. Role names compare exactly, as
// Entra's do.
func (p Principal) HasRole(role string) bool {
	return slices.Contains(p.Roles, role)
}

// KeySet finds a token signing public key by its kid. Implementations must
// be safe for concurrent use. keygate's identity.Authority is one.
type KeySet interface {
	PublicKey(kid string) (crypto.PublicKey, bool)
}

// VerifierConfig configures a Verifier. Issuer, TenantID, Audiences and Keys
// are required.
type VerifierConfig struct {
	Issuer    string   // tokens' iss must equal it
	TenantID  string   // tokens' tid must equal it
	Audiences []string // tokens' aud must hold one of these
	Keys      KeySet   // signing keys, looked up by the token's kid

	// Leeway is the clock skew allowed on exp, nbf and iat. Zero means
	// DefaultLeeway; a negative value means none.
	Leeway time.Duration

	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// CacheSize bounds the number of verified tokens remembered. Zero
	// means DefaultCacheSize; a negative value turns the cache off.
	CacheSize int
}

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	parser *jwt.Parser
	cache  *tokenCache // nil when caching is off
}

// NewVerifier returns a Verifier for cfg. It panics when Issuer, TenantID,
// Audiences or Keys is missing: a verifier without them would accept tokens
// it should refuse.
func NewVerifier(cfg VerifierConfig) *Verifier {
	if cfg.Issuer == "" || cfg.TenantID == "" || len(cfg.Audiences) == 0 || cfg.Keys == nil {
		panic("authz: NewVerifier needs Issuer, TenantID, Audiences and Keys")
	}
	cfg.Audiences = slices.Clone(cfg.Audiences)
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0:
		cfg.Leeway = 0
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}

	v := &Verifier{cfg: cfg}
	v.parser = jwt.NewParser(
		// Pinning the algorithm refuses "none", and HS256 signed with
		// our public key as the HMAC secret, before any key is used.
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audiences...),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		// One spelling per token: the cache is keyed by the text.
		jwt.WithStrictDecoding(),
	)
	if cfg.CacheSize > 0 {
		v.cache = newTokenCache(cfg.CacheSize)
	}
	return v
}

// accessClaims are the claims of an access token that Verify reads.
type accessClaims struct {
	jwt.RegisteredClaims
	TenantID string   `json:"tid"`
	ObjectID string   `json:"oid"`
	AZP      string   `json:"azp"`
	AppID    string   `json:"appid"`
	Roles    []string `json:"roles"`
}

// Verify checks token, an ES256 JWT without the "Bearer " prefix: its
// signature by a key of the KeySet (found by kid), iss, tid, aud, exp, nbf
// and iat, and returns the caller it names.
//
// Successful verifications are remembered until the token expires, so a
// token seen before costs a hash and a map lookup. A remembered token is
// still checked against the clock and the key set on every call, and
// answers as a full verification would at that instant.
func (v *Verifier) Verify(token string) (Principal, error) {
	if len(token) > maxTokenLen {
		return Principal{}, fmt.Errorf("reading token: too long: %w", ErrTokenInvalid)
	}
	key := tokenKey(token)
	now := v.cfg.Now()
	if e, ok := v.lookup(key); ok {
		if err := e.check(now, v.cfg.Leeway); err != nil {
			return Principal{}, err
		}
		return e.principal, nil
	}

	e, err := v.verify(token)
	if err != nil {
		return Principal{}, err
	}
	if v.cache != nil {
		v.cache.put(key, e, now, v.cfg.Leeway)
	}
	return e.principal, nil
}

// lookup returns the remembered verification of the token with key, if
// there is one and its signing key is still in the key set.
func (v *Verifier) lookup(key [32]byte) (cacheEntry, bool) {
	if v.cache == nil {
		return cacheEntry{}, false
	}
	e, ok := v.cache.get(key)
	if !ok {
		return cacheEntry{}, false
	}
	if _, known := v.cfg.Keys.PublicKey(e.kid); !known {
		// The key was withdrawn: forget the token, and let the full
		// check refuse it.
		v.cache.remove(key)
		return cacheEntry{}, false
	}
	return e, true
}

// tokenKey returns the cache key of token: its SHA-256.
func tokenKey(token string) [32]byte {
	// Hashing from a stack buffer spares the cache hit, the common case,
	// an allocation; the authority's tokens fit with room to spare.
	var buf [2048]byte
	if len(token) <= len(buf) {
		n := copy(buf[:], token)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(token))
}

// verify does the full check of token, without the cache.
func (v *Verifier) verify(token string) (cacheEntry, error) {
	var c accessClaims
	t, err := v.parser.ParseWithClaims(token, &c, v.keyFunc)
	if err != nil {
		return cacheEntry{}, classify(err)
	}
	if c.TenantID != v.cfg.TenantID {
		return cacheEntry{}, ErrWrongTenant
	}
	p := Principal{TenantID: c.TenantID, ObjectID: c.ObjectID, ClientID: c.AZP, Roles: c.Roles,
		Expires: c.ExpiresAt.Time}
	if p.ClientID == "" {
		p.ClientID = c.AppID
	}
	if p.ObjectID == "" || p.ClientID == "" {
		return cacheEntry{}, fmt.Errorf("reading claims: oid or azp missing: %w", ErrTokenInvalid)
	}

	kid, _ := t.Header["kid"].(string)
	e := cacheEntry{principal: p, kid: kid, expires: c.ExpiresAt.Time}
	// The token is usable from the later of nbf and iat; both were
	// checked above, and a cache hit must check them again.
	if c.NotBefore != nil {
		e.validFrom = c.NotBefore.Time
	}
	if c.IssuedAt != nil && c.IssuedAt.After(e.validFrom) {
		e.validFrom = c.IssuedAt.Time
	}
	return e, nil
}

// keyFunc finds the key that should have signed t.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("no kid in header")
	}
	k, ok := v.cfg.Keys.PublicKey(kid)
	if !ok {
		return nil, errors.New("unknown kid")
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("key is not a P-256 ECDSA key")
	}
	return pub, nil
}

// classify turns an error of the jwt parser into one of ours. The parser
// checks the signature before the claims, so a claim error means the
// token is genuine.
func classify(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("parsing token: %w", ErrTokenInvalid)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return fmt.Errorf("finding signing key: %w", ErrTokenInvalid)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("checking signature: %w", ErrTokenInvalid)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fmt.Errorf("checking issuer: %w", ErrTokenInvalid)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ErrWrongAudience
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrTokenNotYetValid
	default:
		// A required claim is missing or has the wrong type.
		return fmt.Errorf("checking claims: %w", ErrTokenInvalid)
	}
}
