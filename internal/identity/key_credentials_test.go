package identity_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/keygate/keygate/internal/identity"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/testkit"
)

// selfSigned makes a certificate for key, valid from nbf for validity.
func selfSigned(t *testing.T, key crypto.Signer, nbf time.Time, validity time.Duration) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "ci-deployer"},
		NotBefore:    nbf, NotAfter: nbf.Add(validity),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func rsaKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestClientCertificateCredential signs in with the Azure SDK's
// ClientCertificateCredential as a principal that has a certificate and
// no secret, and gets a token the vault accepts.
func TestClientCertificateCredential(t *testing.T) {
	f := newFixture(t, nil, nil)
	key := rsaKey(t, 2048)
	cert := selfSigned(t, key, time.Now().Add(-time.Hour), 24*time.Hour)
	sp, secret, err := f.auth.NewServicePrincipal(t.Context(), identity.PrincipalSpec{
		DisplayName: "ci", Certificates: [][]byte{cert.Raw},
	})
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" || sp.HasSecret || len(sp.KeyCredentials) != 1 {
		t.Fatalf("principal %+v with a secret %v, want one certificate and no secret", sp, secret != "")
	}

	cred, err := azidentity.NewClientCertificateCredential(f.auth.TenantID(), sp.ClientID, []*x509.Certificate{cert}, key,
		&azidentity.ClientCertificateCredentialOptions{ClientOptions: f.clientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{vaultAudience + "/.default"}})
	if err != nil {
		t.Fatalf("GetToken with a certificate: %v", err)
	}
	p, err := verifier(f.auth, vaultAudience).Verify(tok.Token)
	if err != nil || p.ObjectID != sp.ObjectID {
		t.Fatalf("token for %q, %v; want one for %s", p.ObjectID, err, sp.ObjectID)
	}

	// It has no secret to sign in with.
	if _, err := getToken(t, f.credential(t, sp.ClientID, "anything"), vaultAudience+"/.default"); err == nil {
		t.Error("a principal without a secret got a token with one")
	}
}

// assertion signs a client assertion for clientID to aud with key, named
// in the header by hdr (x5t#S256 or x5t), with claims changed by edit.
func assertion(t *testing.T, method jwt.SigningMethod, key crypto.Signer, hdr map[string]any, clientID, aud string, now time.Time, edit func(jwt.MapClaims)) string {
	t.Helper()
	claims := jwt.MapClaims{
		"aud": aud, "iss": clientID, "sub": clientID, "jti": uuid.NewString(),
		"nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}
	if edit != nil {
		edit(claims)
	}
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range hdr {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func x5tS256(c *x509.Certificate) map[string]any {
	sum := sha256.Sum256(c.Raw)
	return map[string]any{"x5t#S256": base64.StdEncoding.EncodeToString(sum[:])}
}

func x5tSHA1(c *x509.Certificate) map[string]any {
	sum := sha1.Sum(c.Raw)
	return map[string]any{"x5t": base64.RawURLEncoding.EncodeToString(sum[:])}
}

// TestClientAssertions posts hand-made assertions to the token endpoint:
// each way of being wrong is refused with its Entra number, and the
// right ones (PS256, RS256 with x5t, ES256) get tokens, once each.
func TestClientAssertions(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	f := newFixtureAt(t, nil, nil, clock.Now)
	rsaK, ecK, otherK := rsaKey(t, 2048), mustEC(t), rsaKey(t, 2048)
	rsaCert := selfSigned(t, rsaK, clock.Now().Add(-time.Hour), 2*time.Hour)
	ecCert := selfSigned(t, ecK, clock.Now().Add(-time.Hour), 24*time.Hour)
	sp, _, err := f.auth.NewServicePrincipal(t.Context(), identity.PrincipalSpec{
		DisplayName: "ci", Certificates: [][]byte{rsaCert.Raw, ecCert.Raw},
	})
	if err != nil {
		t.Fatal(err)
	}
	aud := f.srv.URL + "/" + f.auth.TenantID() + "/oauth2/v2.0/token"
	post := func(a string) (int, tokenErrorBody) {
		body := url.Values{
			"grant_type": {"client_credentials"}, "client_id": {sp.ClientID}, "scope": {vaultAudience + "/.default"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a},
		}.Encode()
		resp, b := postToken(t, f, body, nil)
		var e tokenErrorBody
		json.Unmarshal(b, &e)
		return resp.StatusCode, e
	}
	now := clock.Now()
	good := assertion(t, jwt.SigningMethodPS256, rsaK, x5tS256(rsaCert), sp.ClientID, aud, now, nil)
	for _, tc := range []struct {
		name      string
		assertion string
		code      int // 0: accepted
	}{
		{"PS256 with x5t#S256", good, 0},
		{"the same again", good, 700027},
		{"RS256 with x5t", assertion(t, jwt.SigningMethodRS256, rsaK, x5tSHA1(rsaCert), sp.ClientID, aud, now, nil), 0},
		{"ES256", assertion(t, jwt.SigningMethodES256, ecK, x5tS256(ecCert), sp.ClientID, aud, now, nil), 0},
		{"another audience", assertion(t, jwt.SigningMethodPS256, rsaK, x5tS256(rsaCert), sp.ClientID, "https://login.example/token", now, nil), 700021},
		{"another issuer", assertion(t, jwt.SigningMethodPS256, rsaK, x5tS256(rsaCert), sp.ClientID, aud, now, func(c jwt.MapClaims) { c["iss"] = "someone" }), 700021},
		{"expired", assertion(t, jwt.SigningMethodPS256, rsaK, x5tS256(rsaCert), sp.ClientID, aud, now, func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Minute).Unix() }), 700024},
		{"valid for a day", assertion(t, jwt.SigningMethodPS256, rsaK, x5tS256(rsaCert), sp.ClientID, aud, now, func(c jwt.MapClaims) { c["exp"] = now.Add(24 * time.Hour).Unix() }), 700024},
		{"no exp", assertion(t, jwt.SigningMethodPS256, rsaK, x5tS256(rsaCert), sp.ClientID, aud, now, func(c jwt.MapClaims) { delete(c, "exp") }), 700024},
		{"unregistered certificate", assertion(t, jwt.SigningMethodPS256, otherK, x5tS256(selfSigned(t, otherK, now, time.Hour)), sp.ClientID, aud, now, nil), 700027},
		{"signed by another key", assertion(t, jwt.SigningMethodPS256, otherK, x5tS256(rsaCert), sp.ClientID, aud, now, nil), 700027},
		{"ES256 naming an RSA certificate", assertion(t, jwt.SigningMethodES256, ecK, x5tS256(rsaCert), sp.ClientID, aud, now, nil), 700027},
		{"no thumbprint", assertion(t, jwt.SigningMethodPS256, rsaK, nil, sp.ClientID, aud, now, nil), 700027},
		{"not a JWT", "a.b.c", 50027},
	} {
		st, e := post(tc.assertion)
		switch {
		case tc.code == 0 && st != http.StatusOK:
			t.Errorf("%s: %d %s, want a token", tc.name, st, e.ErrorDescription)
		case tc.code != 0 && (st != http.StatusUnauthorized || e.Error != "invalid_client" || len(e.ErrorCodes) != 1 || e.ErrorCodes[0] != tc.code):
			t.Errorf("%s: %d %s %v, want 401 invalid_client [%d]", tc.name, st, e.Error, e.ErrorCodes, tc.code)
		}
	}

	// The RSA certificate expires: what it signs is refused, the EC one
	// still works.
	clock.Advance(2 * time.Hour)
	now = clock.Now()
	if st, e := post(assertion(t, jwt.SigningMethodPS256, rsaK, x5tS256(rsaCert), sp.ClientID, aud, now, nil)); st != http.StatusUnauthorized || !strings.Contains(e.ErrorDescription, "expired") {
		t.Errorf("an expired certificate's assertion: %d %s, want 401 saying it expired", st, e.ErrorDescription)
	}
	if st, e := post(assertion(t, jwt.SigningMethodES256, ecK, x5tS256(ecCert), sp.ClientID, aud, now, nil)); st != http.StatusOK {
		t.Errorf("the other certificate after the first expired: %d %s", st, e.ErrorDescription)
	}
}

// TestAssertionReplayAcrossReplicas uses an assertion at one authority
// and then at another sharing its store and public URL, as replicas do:
// the second refuses it. Once it has expired, the purge forgets it.
func TestAssertionReplayAcrossReplicas(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	a := newFixtureAt(t, nil, nil, clock.Now)
	b := newFixtureWith(t, a.store, a.sealer, func(c *identity.Config) { c.URL, c.Now = a.srv.URL, clock.Now })
	key := rsaKey(t, 2048)
	cert := selfSigned(t, key, clock.Now().Add(-time.Hour), 24*time.Hour)
	sp, _, err := a.auth.NewServicePrincipal(t.Context(), identity.PrincipalSpec{DisplayName: "ci", Certificates: [][]byte{cert.Raw}})
	if err != nil {
		t.Fatal(err)
	}
	aud := a.srv.URL + "/" + a.auth.TenantID() + "/oauth2/v2.0/token"
	signed := assertion(t, jwt.SigningMethodPS256, key, x5tS256(cert), sp.ClientID, aud, clock.Now(), nil)
	body := url.Values{
		"grant_type": {"client_credentials"}, "client_id": {sp.ClientID}, "scope": {vaultAudience + "/.default"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {signed},
	}.Encode()
	if resp, b := postToken(t, a, body, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first use at one replica: %d %s", resp.StatusCode, b)
	}
	if resp, raw := postToken(t, b, body, nil); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(raw), "used before") {
		t.Errorf("the same assertion at the other replica: %d %s, want 401 saying it was used", resp.StatusCode, raw)
	}

	count := func() int {
		n := 0
		a.store.View(t.Context(), func(tx store.Tx) error {
			return tx.Scan("identity_assertions", "", "", func(string, []byte) bool { n++; return true })
		})
		return n
	}
	if err := a.auth.PurgeAssertions(t.Context()); err != nil || count() != 1 {
		t.Fatalf("purge before expiry: %v, %d kept, want 1", err, count())
	}
	clock.Advance(20 * time.Minute)
	if err := a.auth.PurgeAssertions(t.Context()); err != nil || count() != 0 {
		t.Errorf("purge after expiry: %v, %d kept, want 0", err, count())
	}
}

func mustEC(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKeyCredentialChanges adds and removes certificates and secrets:
// bad certificates are refused by what is wrong with them and change
// nothing, and no change may leave a principal with no way to sign in.
func TestKeyCredentialChanges(t *testing.T) {
	f := newFixture(t, nil, nil)
	sp, secret := f.newPrincipal(t)
	ctx := t.Context()
	now := time.Now()
	good := selfSigned(t, rsaKey(t, 2048), now.Add(-time.Hour), time.Hour*24)

	for _, tc := range []struct {
		name string
		der  []byte
		want string
	}{
		{"not a certificate", []byte("garbage"), "not a DER X.509 certificate"},
		{"expired", selfSigned(t, rsaKey(t, 2048), now.Add(-48*time.Hour), time.Hour).Raw, "expired"},
		{"small RSA key", selfSigned(t, rsaKey(t, 1024), now, time.Hour).Raw, "1024 bits"},
	} {
		_, err := f.auth.AddKeyCredential(ctx, sp.ClientID, tc.der)
		if !errors.Is(err, identity.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalid saying %q", tc.name, err, tc.want)
		}
	}
	if got, _ := f.auth.ServicePrincipal(ctx, sp.ClientID); len(got.KeyCredentials) != 0 {
		t.Fatalf("refused certificates were kept: %+v", got.KeyCredentials)
	}

	kc, err := f.auth.AddKeyCredential(ctx, sp.ClientID, good.Raw)
	if err != nil || kc.Subject != "CN=ci-deployer" {
		t.Fatalf("AddKeyCredential = %+v, %v", kc, err)
	}
	if _, err := f.auth.AddKeyCredential(ctx, sp.ClientID, good.Raw); !errors.Is(err, identity.ErrInvalid) {
		t.Errorf("the same certificate twice: %v, want ErrInvalid", err)
	}

	// The secret goes; then the last certificate may not.
	if err := f.auth.RemoveSecret(ctx, sp.ClientID); err != nil {
		t.Fatal(err)
	}
	if _, err := getToken(t, f.credential(t, sp.ClientID, secret), vaultAudience+"/.default"); err == nil {
		t.Error("the removed secret still gets tokens")
	}
	if err := f.auth.RemoveKeyCredential(ctx, sp.ClientID, kc.Thumbprint); !errors.Is(err, identity.ErrInvalid) {
		t.Errorf("removing the last certificate of a principal without a secret: %v, want ErrInvalid", err)
	}
	if err := f.auth.RemoveKeyCredential(ctx, sp.ClientID, "nope"); !errors.Is(err, identity.ErrKeyCredentialNotFound) {
		t.Errorf("removing an unknown thumbprint: %v, want ErrKeyCredentialNotFound", err)
	}

	// A new secret signs in; then the certificate may go.
	newSecret, err := f.auth.ResetSecret(ctx, sp.ClientID)
	if err != nil || newSecret == secret {
		t.Fatalf("ResetSecret = %v (same as before: %v)", err, newSecret == secret)
	}
	if _, err := getToken(t, f.credential(t, sp.ClientID, newSecret), vaultAudience+"/.default"); err != nil {
		t.Errorf("the new secret: %v", err)
	}
	if err := f.auth.RemoveKeyCredential(ctx, sp.ClientID, kc.Thumbprint); err != nil {
		t.Errorf("removing the certificate of a principal with a secret: %v", err)
	}
	if err := f.auth.RemoveSecret(ctx, sp.ClientID); !errors.Is(err, identity.ErrInvalid) {
		t.Errorf("removing the secret of a principal without certificates: %v, want ErrInvalid", err)
	}

	// A principal needs a way to sign in from the start.
	if _, _, err := f.auth.NewServicePrincipal(ctx, identity.PrincipalSpec{DisplayName: "nothing"}); !errors.Is(err, identity.ErrInvalid) {
		t.Errorf("a principal with neither secret nor certificate: %v, want ErrInvalid", err)
	}
}
