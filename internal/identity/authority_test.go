package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/identity"
	"github.com/keygate/keygate/internal/seal"
	"github.com/keygate/keygate/internal/store/bolt"
)

// TestClientSecretCredential is the end-to-end proof: the unmodified
// Azure SDK credential obtains a token from the authority over TLS, and
// the vault's verifier accepts it and names the right principal.
func TestClientSecretCredential(t *testing.T) {
	f := newFixture(t, nil, nil)
	sp, secret := f.newPrincipal(t, authz.RoleAdmin, "reader")

	before := time.Now()
	tok, err := getToken(t, f.credential(t, sp.ClientID, secret), vaultAudience+"/.default")
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if lo, hi := before.Add(55*time.Minute), time.Now().Add(61*time.Minute); tok.ExpiresOn.Before(lo) || tok.ExpiresOn.After(hi) {
		t.Errorf("ExpiresOn = %v, want about an hour from %v", tok.ExpiresOn, before)
	}

	got, err := verifier(f.auth, vaultAudience).Verify(tok.Token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := authz.Principal{
		TenantID: f.auth.TenantID(), ObjectID: sp.ObjectID, ClientID: sp.ClientID,
		Roles: []string{authz.RoleAdmin, "reader"}, Expires: got.Expires,
	}
	// The SDK counts ExpiresOn from expires_in, on its own clock.
	if d := got.Expires.Sub(tok.ExpiresOn); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("principal expires %v, the SDK says the token expires %v", got.Expires, tok.ExpiresOn)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verified principal (-want +got):\n%s", diff)
	}

	// A token for one resource is no good at another.
	if _, err := verifier(f.auth, manageAudience).Verify(tok.Token); !errors.Is(err, authz.ErrWrongAudience) {
		t.Errorf("Verify at another audience: error = %v, want %v", err, authz.ErrWrongAudience)
	}
	if strings.Contains(f.logs.String(), secret) || strings.Contains(f.logs.String(), tok.Token) {
		t.Error("the log holds the client secret or the token")
	}
	if !strings.Contains(f.logs.String(), "client_id="+sp.ClientID) {
		t.Errorf("the log does not name client %s:\n%s", sp.ClientID, f.logs)
	}
}

// TestTokenClaims decodes a token the SDK obtained and checks the claims
// and header against Entra's v2.0 shape.
func TestTokenClaims(t *testing.T) {
	f := newFixture(t, nil, nil)
	sp, secret := f.newPrincipal(t)
	tok, err := getToken(t, f.credential(t, sp.ClientID, secret), manageAudience+"/.default")
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	parts := strings.Split(tok.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	var header map[string]any
	decodeSegment(t, parts[0], &header)
	if diff := cmp.Diff(map[string]any{"alg": "ES256", "typ": "JWT", "kid": header["kid"]}, header); diff != "" || header["kid"] == "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}

	var claims map[string]any
	decodeSegment(t, parts[1], &claims)
	wantStrings := map[string]string{
		"iss": f.auth.Issuer(), "aud": manageAudience, "tid": f.auth.TenantID(),
		"oid": sp.ObjectID, "sub": sp.ObjectID, "azp": sp.ClientID,
		"appid": sp.ClientID, "ver": "2.0",
	}
	for k, want := range wantStrings {
		if got := claims[k]; got != want {
			t.Errorf("claim %s = %v, want %q", k, got, want)
		}
	}
	if _, ok := claims["roles"]; ok {
		t.Errorf("roles claim present for a principal without roles: %v", claims["roles"])
	}
	if claims["uti"] == "" || claims["uti"] != claims["jti"] {
		t.Errorf("uti = %v, jti = %v, want one random id in both", claims["uti"], claims["jti"])
	}
	iat, nbf, exp := claims["iat"].(float64), claims["nbf"].(float64), claims["exp"].(float64)
	if iat != nbf || exp-iat != time.Hour.Seconds() {
		t.Errorf("iat, nbf, exp = %v, %v, %v, want nbf = iat and exp = iat + 3600", iat, nbf, exp)
	}
	if want := f.srv.URL + "/" + f.auth.TenantID() + "/v2.0"; f.auth.Issuer() != want {
		t.Errorf("Issuer() = %q, want %q", f.auth.Issuer(), want)
	}
}

func decodeSegment(t *testing.T, seg string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("decoding token segment: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding token segment: %v", err)
	}
}

// TestCredentialRefused checks that the SDK credential fails, with the
// authority's status, when it should.
func TestCredentialRefused(t *testing.T) {
	f := newFixture(t, nil, nil)
	sp, secret := f.newPrincipal(t)
	gone, goneSecret := f.newPrincipal(t)
	if err := f.auth.DeleteServicePrincipal(t.Context(), gone.ClientID); err != nil {
		t.Fatalf("DeleteServicePrincipal: %v", err)
	}

	tests := []struct {
		name       string
		clientID   string
		secret     string
		scope      string
		wantStatus int
		wantError  string
	}{
		{"wrong secret", sp.ClientID, goneSecret, vaultAudience + "/.default", http.StatusUnauthorized, "invalid_client"},
		{"unknown scope", sp.ClientID, secret, "https://elsewhere.example/.default", http.StatusBadRequest, "invalid_scope"},
		{"deleted principal", gone.ClientID, goneSecret, vaultAudience + "/.default", http.StatusUnauthorized, "invalid_client"},
		{"unknown client", "00000000-0000-4000-8000-000000000000", secret, vaultAudience + "/.default", http.StatusUnauthorized, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := getToken(t, f.credential(t, tt.clientID, tt.secret), tt.scope)
			afe, ok := errors.AsType[*azidentity.AuthenticationFailedError](err)
			if !ok {
				t.Fatalf("GetToken error = %v, want an AuthenticationFailedError", err)
			}
			if afe.RawResponse == nil || afe.RawResponse.StatusCode != tt.wantStatus {
				t.Fatalf("GetToken response = %+v, want status %d", afe.RawResponse, tt.wantStatus)
			}
			if msg := err.Error(); !strings.Contains(msg, `"error": "`+tt.wantError+`"`) || strings.Contains(msg, tt.secret) {
				t.Errorf("GetToken error does not name %q, or holds the secret:\n%s", tt.wantError, msg)
			}
		})
	}
	if strings.Contains(f.logs.String(), secret) || strings.Contains(f.logs.String(), goneSecret) {
		t.Error("the log holds a client secret")
	}
}

// TestRestart checks that an Authority restarted on the same database
// keeps its tenant and key: a token issued before verifies after.
func TestRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keygate.db")
	sealer := newSealer(t)
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	first := newFixture(t, st, sealer)
	sp, secret := first.newPrincipal(t)
	before, err := getToken(t, first.credential(t, sp.ClientID, secret), vaultAudience+"/.default")
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	first.srv.Close()
	if err := st.Close(); err != nil {
		t.Fatalf("closing store: %v", err)
	}

	st, err = bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("reopening store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	second := newFixture(t, st, sealer)
	if second.auth.TenantID() != first.auth.TenantID() {
		t.Errorf("tenant after restart = %s, want %s", second.auth.TenantID(), first.auth.TenantID())
	}
	// The new server listens on another port, so the issuer differs;
	// verify against the old issuer with the restarted authority's keys.
	v := authz.NewVerifier(authz.VerifierConfig{
		Issuer: first.auth.Issuer(), TenantID: second.auth.TenantID(),
		Audiences: []string{vaultAudience}, Keys: second.auth,
	})
	if _, err := v.Verify(before.Token); err != nil {
		t.Errorf("Verify of a token issued before the restart: %v", err)
	}
	// The principal survived too.
	after, err := getToken(t, second.credential(t, sp.ClientID, secret), vaultAudience+"/.default")
	if err != nil {
		t.Fatalf("GetToken after restart: %v", err)
	}
	if _, err := verifier(second.auth, vaultAudience).Verify(after.Token); err != nil {
		t.Errorf("Verify of a token issued after the restart: %v", err)
	}
	if keys := fetchJWKS(t, second); len(keys.Keys) != 1 {
		t.Errorf("JWKS after restart has %d keys, want the one from the first start", len(keys.Keys))
	}
}

// TestInitWithWrongSealKey checks that a store sealed under another master
// key makes Init fail, rather than start with a new signing key.
func TestInitWithWrongSealKey(t *testing.T) {
	f := newFixture(t, nil, nil)
	a := identity.New(f.config(f.srv.URL))
	other := identity.New(func() identity.Config {
		c := f.config(f.srv.URL)
		c.Sealer = newSealer(t)
		return c
	}())
	if err := a.Init(t.Context()); err != nil {
		t.Fatalf("Init with the right key: %v", err)
	}
	err := other.Init(t.Context())
	if !errors.Is(err, seal.ErrWrongKey) {
		t.Fatalf("Init with another key: error = %v, want %v", err, seal.ErrWrongKey)
	}
	if other.TenantID() != "" {
		t.Errorf("TenantID after failed Init = %q, want empty", other.TenantID())
	}
	if n := len(f.store.(*memStore).raw("identity_signing_keys")); n != 1 {
		t.Errorf("store holds %d signing keys, want 1", n)
	}
}

// TestSigningKeySealedAtRest checks that the stored signing key opens only
// with its kid as associated data and that the record holds no plaintext.
func TestSigningKeySealedAtRest(t *testing.T) {
	f := newFixture(t, nil, nil)
	recs := f.store.(*memStore).raw("identity_signing_keys")
	if len(recs) != 1 {
		t.Fatalf("store holds %d signing keys, want 1", len(recs))
	}
	var rec struct {
		KID    string `json:"kid"`
		Sealed []byte `json:"sealedKey"`
	}
	for _, v := range recs {
		if err := json.Unmarshal(v, &rec); err != nil {
			t.Fatalf("decoding key record: %v", err)
		}
	}
	raw, err := f.sealer.Open(rec.Sealed, []byte("identity signing key"+rec.KID))
	if err != nil {
		t.Fatalf("opening the sealed key with its kid: %v", err)
	}
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		t.Fatalf("parsing the unsealed key: %v", err)
	}
	pub, ok := f.auth.PublicKey(rec.KID)
	if !ok || !priv.PublicKey.Equal(pub) {
		t.Fatal("the sealed key is not the key PublicKey returns for its kid")
	}
	for _, v := range recs {
		if strings.Contains(string(v), string(raw)) || strings.Contains(string(v), base64.StdEncoding.EncodeToString(raw)) {
			t.Error("the key record holds the private key in plaintext")
		}
	}
	if _, err := f.sealer.Open(rec.Sealed, []byte("identity signing key"+"other")); err == nil {
		t.Error("the sealed key opened with another kid as associated data")
	}
}

func TestInitConfigErrors(t *testing.T) {
	good := func() identity.Config {
		return identity.Config{
			Store: newMemStore(), Sealer: newSealer(t),
			URL: "https://127.0.0.1:8443", Audiences: []string{vaultAudience},
		}
	}
	tests := []struct {
		name   string
		change func(*identity.Config)
		want   string
	}{
		{"no store", func(c *identity.Config) { c.Store = nil }, "Store is nil"},
		{"no sealer", func(c *identity.Config) { c.Sealer = nil }, "Sealer is nil"},
		{"http URL", func(c *identity.Config) { c.URL = "http://127.0.0.1:8443" }, "URL: \"http://127.0.0.1:8443\": scheme must be https"},
		{"URL with path", func(c *identity.Config) { c.URL = "https://host/tenant" }, "must be an origin"},
		{"no URL", func(c *identity.Config) { c.URL = "" }, "URL: \"\": scheme must be https"},
		{"no audiences", func(c *identity.Config) { c.Audiences = nil }, "Audiences is empty"},
		{"scope as audience", func(c *identity.Config) { c.Audiences = []string{vaultAudience, "https://x/.default"} }, "Audiences[1]"},
		{"short lifetime", func(c *identity.Config) { c.TokenLifetime = time.Second }, "TokenLifetime 1s is shorter than a minute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.change(&cfg)
			err := identity.New(cfg).Init(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Init error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	// A trailing slash on the URL is accepted, as azidentity's host has one.
	cfg := good()
	cfg.URL += "/"
	a := identity.New(cfg)
	if err := a.Init(t.Context()); err != nil {
		t.Fatalf("Init with a trailing slash: %v", err)
	}
	if want := "https://127.0.0.1:8443/" + a.TenantID() + "/v2.0"; a.Issuer() != want {
		t.Errorf("Issuer() = %q, want %q", a.Issuer(), want)
	}
}

func TestBeforeInit(t *testing.T) {
	a := identity.New(identity.Config{URL: "https://127.0.0.1:8443"})
	if a.TenantID() != "" || a.Issuer() != "" {
		t.Errorf("TenantID, Issuer = %q, %q before Init, want empty", a.TenantID(), a.Issuer())
	}
	if _, ok := a.PublicKey("any"); ok {
		t.Error("PublicKey found a key before Init")
	}
	sp := identity.ServicePrincipal{ObjectID: "o", ClientID: "c"}
	if _, _, err := a.IssueToken(sp, vaultAudience); !errors.Is(err, identity.ErrNotInitialized) {
		t.Errorf("IssueToken error = %v, want %v", err, identity.ErrNotInitialized)
	}
	ctx := t.Context()
	if _, _, err := a.CreateServicePrincipal(ctx, "app", nil); !errors.Is(err, identity.ErrNotInitialized) {
		t.Errorf("CreateServicePrincipal error = %v, want %v", err, identity.ErrNotInitialized)
	}
	if _, err := a.ServicePrincipal(ctx, "c"); !errors.Is(err, identity.ErrNotInitialized) {
		t.Errorf("ServicePrincipal error = %v, want %v", err, identity.ErrNotInitialized)
	}
	if _, err := a.ListServicePrincipals(ctx); !errors.Is(err, identity.ErrNotInitialized) {
		t.Errorf("ListServicePrincipals error = %v, want %v", err, identity.ErrNotInitialized)
	}
	if err := a.DeleteServicePrincipal(ctx, "c"); !errors.Is(err, identity.ErrNotInitialized) {
		t.Errorf("DeleteServicePrincipal error = %v, want %v", err, identity.ErrNotInitialized)
	}
	defer func() {
		if recover() == nil {
			t.Error("Handler before Init did not panic")
		}
	}()
	a.Handler()
}
