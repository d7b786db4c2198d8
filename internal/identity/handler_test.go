package identity_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/store"
)

// jwksDoc is a JWKS as a verifier outside keygate would read it.
type jwksDoc struct {
	Keys []struct {
		KTY string `json:"kty"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		KID string `json:"kid"`
		CRV string `json:"crv"`
		X   string `json:"x"`
		Y   string `json:"y"`
	} `json:"keys"`
}

// PublicKey makes jwksDoc an authz.KeySet.
func (d jwksDoc) PublicKey(kid string) (crypto.PublicKey, bool) {
	for _, k := range d.Keys {
		if k.KID != kid {
			continue
		}
		x, errX := base64.RawURLEncoding.DecodeString(k.X)
		y, errY := base64.RawURLEncoding.DecodeString(k.Y)
		if errX != nil || errY != nil {
			return nil, false
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), slices.Concat([]byte{4}, x, y))
		return pub, err == nil
	}
	return nil, false
}

func getJSON(t *testing.T, f *fixture, path string, v any) {
	t.Helper()
	resp, err := f.srv.Client().Get(f.srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200", path, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET %s: Content-Type %q, want application/json", path, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decoding: %v", path, err)
	}
}

func fetchJWKS(t *testing.T, f *fixture) jwksDoc {
	t.Helper()
	var doc jwksDoc
	getJSON(t, f, "/"+f.auth.TenantID()+"/discovery/v2.0/keys", &doc)
	return doc
}

// TestJWKS reads the key set as an outside verifier would: the kid is the
// RFC 7638 thumbprint of the key, and the keys verify the tokens.
func TestJWKS(t *testing.T) {
	f := newFixture(t, nil, nil)
	doc := fetchJWKS(t, f)
	if len(doc.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1", len(doc.Keys))
	}
	k := doc.Keys[0]
	if k.KTY != "EC" || k.CRV != "P-256" || k.Alg != "ES256" || k.Use != "sig" {
		t.Errorf("key kty, crv, alg, use = %s, %s, %s, %s, want EC, P-256, ES256, sig", k.KTY, k.CRV, k.Alg, k.Use)
	}
	canon := `{"crv":"P-256","kty":"EC","x":"` + k.X + `","y":"` + k.Y + `"}`
	sum := sha256.Sum256([]byte(canon))
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); k.KID != want {
		t.Errorf("kid = %s, want RFC 7638 thumbprint %s", k.KID, want)
	}
	pub, ok := f.auth.PublicKey(k.KID)
	if jwkPub, _ := doc.PublicKey(k.KID); !ok || !pub.(*ecdsa.PublicKey).Equal(jwkPub) {
		t.Error("the JWKS key is not the authority's key for its kid")
	}

	sp, _ := f.newPrincipal(t)
	tok, _, err := f.auth.IssueToken(sp, vaultAudience)
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	v := authz.NewVerifier(authz.VerifierConfig{
		Issuer: f.auth.Issuer(), TenantID: f.auth.TenantID(),
		Audiences: []string{vaultAudience}, Keys: doc,
	})
	if p, err := v.Verify(tok); err != nil || p.ObjectID != sp.ObjectID {
		t.Errorf("Verify with the JWKS keys = %+v, %v; want object %s", p, err, sp.ObjectID)
	}
}

func TestDiscovery(t *testing.T) {
	f := newFixture(t, nil, nil)
	var doc map[string]any
	getJSON(t, f, "/"+f.auth.TenantID()+"/v2.0/.well-known/openid-configuration", &doc)
	base := f.srv.URL + "/" + f.auth.TenantID()
	want := map[string]any{
		"issuer":                                f.auth.Issuer(),
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"grant_types_supported":                 []any{"client_credentials"},
		"token_endpoint_auth_methods_supported": []any{"client_secret_post", "private_key_jwt"},
		"id_token_signing_alg_values_supported": []any{"ES256"},
		"subject_types_supported":               []any{"pairwise"},
	}
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Errorf("discovery document (-want +got):\n%s", diff)
	}
}

// tokenErrorBody is the body of a refused token request.
type tokenErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
}

// postToken sends a raw token request and returns the response and body.
func postToken(t *testing.T, f *fixture, body string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		f.srv.URL+"/"+f.auth.TenantID()+"/oauth2/v2.0/token", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST token: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading token response: %v", err)
	}
	return resp, b
}

// TestTokenEndpointErrors sends the requests MSAL never sends and checks
// each refusal's status, OAuth2 code and Entra-shaped body.
func TestTokenEndpointErrors(t *testing.T) {
	f := newFixture(t, nil, nil)
	sp, secret := f.newPrincipal(t)
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	good := []string{
		"grant_type", "client_credentials", "client_id", sp.ClientID,
		"client_secret", secret, "scope", vaultAudience + "/.default openid offline_access profile",
	}
	without := func(name string) string {
		var kv []string
		for i := 0; i < len(good); i += 2 {
			if good[i] != name {
				kv = append(kv, good[i], good[i+1])
			}
		}
		return form(kv...)
	}

	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantError  string
		wantCode   int
	}{
		{"no grant type", without("grant_type"), 400, "invalid_request", 900144},
		{"authorization code grant", form("grant_type", "authorization_code", "client_id", sp.ClientID, "code", "x"), 400, "unsupported_grant_type", 70003},
		{"no client id", without("client_id"), 400, "invalid_request", 900144},
		{"no secret", without("client_secret"), 401, "invalid_client", 7000218},
		{"secret and assertion", form(append(good[:6:6], "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion", "a.b.c")...), 400, "invalid_request", 9002313},
		{"assertion of another type", form(append(good[:4:4], "client_assertion_type", "urn:other", "client_assertion", "a.b.c", "scope", vaultAudience+"/.default")...), 400, "invalid_request", 9002313},
		{"assertion type, no assertion", form(append(good[:4:4], "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "scope", vaultAudience+"/.default")...), 400, "invalid_request", 900144},
		{"assertion, no type", form(append(good[:4:4], "client_assertion", "a.b.c", "scope", vaultAudience+"/.default")...), 400, "invalid_request", 900144},
		{"malformed assertion", form(append(good[:4:4], "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion", "a.b.c", "scope", vaultAudience+"/.default")...), 401, "invalid_client", 50027},
		{"no scope", without("scope"), 400, "invalid_request", 900144},
		{"wrong secret", form(append(good[:4:4], "client_secret", "wrong", "scope", vaultAudience+"/.default")...), 401, "invalid_client", 7000215},
		{"unknown client", form("grant_type", "client_credentials", "client_id", "nobody", "client_secret", secret, "scope", vaultAudience+"/.default"), 401, "invalid_client", 700016},
		{"scope without /.default", form(append(good[:6:6], "scope", vaultAudience)...), 400, "invalid_scope", 70011},
		{"two resources", form(append(good[:6:6], "scope", vaultAudience+"/.default "+manageAudience+"/.default")...), 400, "invalid_scope", 70011},
		{"only OIDC scopes", form(append(good[:6:6], "scope", "openid profile")...), 400, "invalid_scope", 70011},
		{"repeated parameter", form(append(good, "client_id", sp.ClientID)...), 400, "invalid_request", 9002313},
		{"body over 64 KiB", form(append(good, "claims", strings.Repeat("x", 65<<10))...), 400, "invalid_request", 9002313},
		{"bad form encoding", "grant_type=%zz", 400, "invalid_request", 9002313},
		{"client id too long", form("grant_type", "client_credentials", "client_id", strings.Repeat("c", 129), "client_secret", secret, "scope", vaultAudience+"/.default"), 400, "invalid_request", 9002313},
	}
	correlation := "3f0c4a7e-1b2d-4c5e-8f9a-0b1c2d3e4f50"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := postToken(t, f, tt.body, http.Header{"Client-Request-Id": {correlation}})
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, b)
			}
			var body tokenErrorBody
			if err := json.Unmarshal(b, &body); err != nil {
				t.Fatalf("decoding body %s: %v", b, err)
			}
			if body.Error != tt.wantError || !slices.Equal(body.ErrorCodes, []int{tt.wantCode}) {
				t.Errorf("error, error_codes = %q, %v, want %q, [%d]", body.Error, body.ErrorCodes, tt.wantError, tt.wantCode)
			}
			if body.CorrelationID != correlation || body.TraceID == "" || body.Timestamp == "" {
				t.Errorf("correlation_id, trace_id, timestamp = %q, %q, %q; want the request's id and two values",
					body.CorrelationID, body.TraceID, body.Timestamp)
			}
			if !strings.Contains(body.ErrorDescription, "Trace ID: "+body.TraceID) {
				t.Errorf("error_description %q lacks the trace id", body.ErrorDescription)
			}
			if strings.Contains(string(b), secret) {
				t.Errorf("body echoes the client secret: %s", b)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		})
	}
	if logs := f.logs.String(); strings.Contains(logs, secret) {
		t.Errorf("the log holds the client secret:\n%s", logs)
	}
}

// TestTokenEndpointSuccess checks the response MSAL decodes.
func TestTokenEndpointSuccess(t *testing.T) {
	f := newFixture(t, nil, nil)
	sp, secret := f.newPrincipal(t)
	v := url.Values{
		"grant_type": {"client_credentials"}, "client_id": {sp.ClientID},
		"client_secret": {secret},
		// A trailing slash on the resource names the same audience.
		"scope":       {vaultAudience + "//.default openid offline_access profile"},
		"client_info": {"1"},
	}
	resp, b := postToken(t, f, v.Encode(), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, b)
	}
	var body struct {
		TokenType    string `json:"token_type"`
		ExpiresIn    int    `json:"expires_in"`
		ExtExpiresIn int    `json:"ext_expires_in"`
		AccessToken  string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if body.TokenType != "Bearer" || body.ExpiresIn < 3590 || body.ExpiresIn > 3600 || body.ExtExpiresIn != body.ExpiresIn {
		t.Errorf("token_type, expires_in, ext_expires_in = %q, %d, %d; want Bearer, about 3600 twice",
			body.TokenType, body.ExpiresIn, body.ExtExpiresIn)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if _, err := verifier(f.auth, vaultAudience).Verify(body.AccessToken); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// downStore is a store whose reads fail as an unreachable database's do
// once down is set.
type downStore struct {
	*memStore
	down atomic.Bool
}

func (s *downStore) View(ctx context.Context, fn func(store.Tx) error) error {
	if s.down.Load() {
		return fmt.Errorf("querying: connection refused: %w", store.ErrUnavailable)
	}
	return s.memStore.View(ctx, fn)
}

// TestTokenEndpointStoreDown checks that a store outage is a 503, which
// the SDK retries, and not a refusal of the client.
func TestTokenEndpointStoreDown(t *testing.T) {
	st := &downStore{memStore: newMemStore()}
	f := newFixture(t, st, nil)
	sp, secret := f.newPrincipal(t)
	st.down.Store(true)
	v := url.Values{
		"grant_type": {"client_credentials"}, "client_id": {sp.ClientID},
		"client_secret": {secret}, "scope": {vaultAudience + "/.default"},
	}
	resp, b := postToken(t, f, v.Encode(), nil)
	var body tokenErrorBody
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || body.Error != "temporarily_unavailable" {
		t.Errorf("status, error = %d, %q; want 503, temporarily_unavailable", resp.StatusCode, body.Error)
	}
	if strings.Contains(string(b), "connection refused") {
		t.Errorf("body echoes the inner error: %s", b)
	}
}

func TestHandlerRoutes(t *testing.T) {
	f := newFixture(t, nil, nil)
	tenant := f.auth.TenantID()
	tests := []struct {
		method, path string
		want         int
	}{
		{"GET", "/" + tenant + "/oauth2/v2.0/token", http.StatusMethodNotAllowed},
		{"POST", "/" + tenant + "/discovery/v2.0/keys", http.StatusMethodNotAllowed},
		{"GET", "/" + tenant + "/oauth2/v2.0/authorize", http.StatusNotFound},
		{"GET", "/" + tenant + "/v2.0/.well-known/openid-configuration", http.StatusOK},
		{"GET", "/organizations/v2.0/.well-known/openid-configuration", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, f.srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}
