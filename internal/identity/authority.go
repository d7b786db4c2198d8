// Package identity is keygate's identity authority: it keeps a tenant,
// its service principals and the keys that sign their tokens, and serves
// the OAuth2 and OpenID endpoints through which the Azure SDK's
// credentials obtain tokens, as they would from Microsoft Entra.
//
// Tokens are ES256 JWTs that package authz verifies offline, with the
// Authority itself as its KeySet or with the keys of the JWKS document.
package identity

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/store"
)

// DefaultTokenLifetime is the lifetime of tokens when Config leaves it
// zero. An hour is Entra's default: the SDK's token cache and refresh are
// tuned for it, and it bounds how long a deleted principal's token keeps
// working, since tokens cannot be revoked.
const DefaultTokenLifetime = time.Hour

// Store buckets and keys.
const (
	bucketIdentity    = "identity"
	keyTenant         = "tenant"
	bucketSigningKeys = "identity_signing_keys"
	bucketPrincipals  = "identity_principals"
)

// Errors of the Authority, checked with errors.Is.
var (
	ErrNotInitialized    = errors.New("identity authority is not initialized")
	ErrPrincipalNotFound = errors.New("service principal not found")
	ErrUnknownAudience   = errors.New("audience is not one this authority issues tokens for")
)

// Sealer encrypts records at rest. *seal.Sealer implements it.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// Config configures an Authority. Store, Sealer, URL and Audiences are
// required.
type Config struct {
	Store  store.Store
	Sealer Sealer // seals the signing keys at rest

	// URL is the authority host as clients reach it, an https origin
	// such as https://127.0.0.1:8443, with no path. azidentity takes it,
	// with a trailing slash, as its ActiveDirectoryAuthorityHost.
	URL string

	// Audiences are the resources the authority issues tokens for. A
	// client asks for one with the scope "RESOURCE/.default".
	Audiences []string

	// TokenLifetime is how long tokens are valid; zero means
	// DefaultTokenLifetime.
	TokenLifetime time.Duration

	// KeyRotationInterval is how old the newest signing key may grow
	// before Run adds another; zero means never on its own (see
	// RotateSigningKey).
	KeyRotationInterval time.Duration

	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// Logger receives issuance (debug) and refusals (info); nil discards.
	Logger *slog.Logger

	// Audit receives one record per token request, issued or refused;
	// nil discards them.
	Audit audit.Logger
}

// Authority issues tokens for the service principals of one tenant. Its
// methods are safe for concurrent use once Init has returned; before that
// they fail with ErrNotInitialized (Handler panics) or, for TenantID,
// Issuer and PublicKey, return nothing. The Authority does not close its
// Store.
type Authority struct {
	cfg   Config
	log   *slog.Logger
	audit audit.Logger

	// state is nil until Init succeeds. It is replaced whole, never
	// modified, so that PublicKey, called on every request the vault
	// serves, reads it without a lock.
	state atomic.Pointer[state]
}

// state is what Init loads from the store.
type state struct {
	tenantID string
	issuer   string
	keys     keyRing
}

// New returns an Authority for cfg. It does no I/O: call Init before
// anything else.
func New(cfg Config) *Authority {
	if cfg.TokenLifetime == 0 {
		cfg.TokenLifetime = DefaultTokenLifetime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.URL = strings.TrimSuffix(cfg.URL, "/")
	aud := cfg.Audit
	if aud == nil {
		aud = audit.Discard
	}
	return &Authority{cfg: cfg, log: log, audit: aud}
}

// Init loads the tenant and the signing keys from the store, creating them
// on first start: the tenant id is a random GUID and the key an ECDSA P-256
// key whose kid is its RFC 7638 thumbprint. Several processes starting on
// one store agree on one tenant and key.
func (a *Authority) Init(ctx context.Context) error {
	if err := a.checkConfig(); err != nil {
		return fmt.Errorf("initializing identity authority: %w", err)
	}

	tenantID, candidate, err := a.candidates()
	if err != nil {
		return fmt.Errorf("initializing identity authority: %w", err)
	}
	var st state
	err = a.cfg.Store.Update(ctx, func(tx store.Tx) error {
		id, err := loadOrPutTenant(tx, tenantID, a.cfg.Now())
		if err != nil {
			return err
		}
		keys, err := loadOrPutKeys(tx, a.cfg.Sealer, candidate)
		if err != nil {
			return err
		}
		st = state{tenantID: id, keys: keys}
		return nil
	})
	if err != nil {
		return fmt.Errorf("initializing identity authority: %w", err)
	}
	st.issuer = a.cfg.URL + "/" + st.tenantID + "/v2.0"
	a.state.Store(&st)
	a.log.Info("identity authority ready", "tenant_id", st.tenantID, "kid", st.keys.active(a.cfg.Now()).kid)
	return nil
}

// candidates makes the tenant id and signing key that Init stores when the
// store has none. They are made outside the transaction, which may run
// more than once and must have no effects of its own.
func (a *Authority) candidates() (tenantID string, key keyRecord, err error) {
	tenantID, err = newGUID()
	if err != nil {
		return "", keyRecord{}, err
	}
	k, err := generateSigningKey(a.cfg.Now())
	if err != nil {
		return "", keyRecord{}, err
	}
	key, err = sealSigningKey(a.cfg.Sealer, k)
	return tenantID, key, err
}

// checkConfig reports the first required field that is missing or wrong.
func (a *Authority) checkConfig() error {
	switch {
	case a.cfg.Store == nil:
		return errors.New("config: Store is nil")
	case a.cfg.Sealer == nil:
		return errors.New("config: Sealer is nil")
	case a.cfg.TokenLifetime < time.Minute:
		return fmt.Errorf("config: TokenLifetime %v is shorter than a minute", a.cfg.TokenLifetime)
	}
	if err := checkOrigin(a.cfg.URL); err != nil {
		return fmt.Errorf("config: URL: %w", err)
	}
	if len(a.cfg.Audiences) == 0 {
		return errors.New("config: Audiences is empty")
	}
	for i, aud := range a.cfg.Audiences {
		if aud == "" || strings.ContainsAny(aud, " \t\r\n") || strings.HasSuffix(aud, "/.default") {
			return fmt.Errorf("config: Audiences[%d]: %q is not a resource identifier", i, aud)
		}
	}
	return nil
}

// checkOrigin checks that u is an https origin: azidentity refuses any
// other authority host, and drops a path.
func checkOrigin(u string) error {
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL", u)
	case p.Scheme != "https":
		return fmt.Errorf("%q: scheme must be https", u)
	case p.Host == "":
		return fmt.Errorf("%q: host is missing", u)
	case p.Path != "" || p.RawQuery != "" || p.Fragment != "" || p.User != nil:
		return fmt.Errorf("%q: must be an origin, without path, query or user", u)
	}
	return nil
}

// loadOrPutTenant returns the stored tenant id, storing candidate first if
// there is none.
func loadOrPutTenant(tx store.Tx, candidate string, now time.Time) (string, error) {
	b, err := tx.Get(bucketIdentity, keyTenant)
	if errors.Is(err, store.ErrNotFound) {
		rec := tenantRecord{TenantID: candidate, Created: now.UTC()}
		return candidate, putJSON(tx, bucketIdentity, keyTenant, rec)
	}
	if err != nil {
		return "", fmt.Errorf("loading tenant: %w", err)
	}
	var rec tenantRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.TenantID == "" {
		return "", errors.New("loading tenant: record is corrupt")
	}
	return rec.TenantID, nil
}

// tenantRecord is the stored tenant.
type tenantRecord struct {
	TenantID string    `json:"tenantId"`
	Created  time.Time `json:"created"`
}

// current returns the state, or ErrNotInitialized before Init.
func (a *Authority) current() (*state, error) {
	st := a.state.Load()
	if st == nil {
		return nil, ErrNotInitialized
	}
	return st, nil
}

// TenantID returns the tenant's id, or "" before Init.
func (a *Authority) TenantID() string {
	if st := a.state.Load(); st != nil {
		return st.tenantID
	}
	return ""
}

// Issuer returns the iss of the authority's tokens, URL + "/" + tenant id +
// "/v2.0", or "" before Init.
func (a *Authority) Issuer() string {
	if st := a.state.Load(); st != nil {
		return st.issuer
	}
	return ""
}

// PublicKey returns the public half of the signing key kid, an
// *ecdsa.PublicKey. It implements authz.KeySet; it finds nothing before
// Init.
func (a *Authority) PublicKey(kid string) (crypto.PublicKey, bool) {
	st := a.state.Load()
	if st == nil {
		return nil, false
	}
	k := st.keys.find(kid)
	if k == nil {
		return nil, false
	}
	return &k.priv.PublicKey, true
}

// audience returns the configured spelling of the audience aud names, or
// false. A trailing slash is ignored, since Azure treats
// "https://vault.azure.net" and "https://vault.azure.net/" as one resource.
func (a *Authority) audience(aud string) (string, bool) {
	want := strings.TrimSuffix(aud, "/")
	for _, have := range a.cfg.Audiences {
		if strings.TrimSuffix(have, "/") == want && want != "" {
			return have, true
		}
	}
	return "", false
}

// putJSON stores v as JSON under key in bucket.
func putJSON(tx store.Tx, bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s record: %w", bucket, err)
	}
	return tx.Put(bucket, key, b)
}

// newGUID returns a random (version 4) GUID.
func newGUID() (string, error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return "", fmt.Errorf("generating id: %w", err)
	}
	return id.String(), nil
}

// TenantURL returns the authority with the tenant as path,
// URL + "/" + tenant id, as host agents are given it; "" before Init.
func (a *Authority) TenantURL() string {
	if st := a.state.Load(); st != nil {
		return a.cfg.URL + "/" + st.tenantID
	}
	return ""
}
