package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/golang-jwt/jwt/v5"

	"github.com/keygate/keygate/internal/manage"
)

func TestUnauthenticatedGetsChallenge(t *testing.T) {
	tv := startVault(t, "")
	// The SDK's first request carries no token and no body; the challenge
	// must come before any validation.
	for _, tc := range []struct{ method, path string }{
		{"GET", "/secrets/x/?api-version=2026-04-01"},
		{"PUT", "/secrets/x?api-version=2026-04-01"},
		{"GET", "/secrets?api-version=bogus"},
	} {
		resp, body := tv.do(tc.method, tc.path, "", "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s: status %d, want 401", tc.method, tc.path, resp.StatusCode)
		}
		want := fmt.Sprintf(`Bearer authorization="%s%s", resource="%s"`,
			tv.srv.AuthorityHost(), tv.srv.TenantID(), tv.srv.Resource())
		if got := resp.Header.Get("WWW-Authenticate"); got != want {
			t.Errorf("challenge = %q, want %q", got, want)
		}
		if !strings.Contains(body, `"code":"Unauthorized"`) {
			t.Errorf("body = %s", body)
		}
	}
}

func TestTokenRefusals(t *testing.T) {
	tv := startVault(t, "")
	good := tv.adminToken()
	if resp, body := tv.do("GET", "/secrets?api-version=7.5", good, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("admin token refused: %d %s", resp.StatusCode, body)
	}

	mgmtToken, err := tv.creds.Token(ctxT(t), tv.http, manage.Audience+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		token string
	}{
		{"foreign key", resign(t, good, nil)},
		{"wrong audience", mgmtToken},
		{"wrong tenant", resign(t, good, map[string]any{"tid": "00000000-0000-0000-0000-000000000000"})},
		{"garbage", "not-a-jwt"},
		{"alg none", unsignedToken(t, good)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tv.do("GET", "/secrets?api-version=7.5", tc.token, "")
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status %d, want 401: %s", resp.StatusCode, body)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without challenge")
			}
		})
	}

	// The same good token, once its hour has passed.
	tv.clock.Advance(2 * time.Hour)
	if resp, body := tv.do("GET", "/secrets?api-version=7.5", good, ""); resp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(strings.ToLower(body), "expired") {
		t.Errorf("expired token: %d %s", resp.StatusCode, body)
	}
}

// resign re-signs token's claims, changed by set, with a key the vault does
// not know, under the kid of the vault's own key.
func resign(t *testing.T, token string, set map[string]any) string {
	t.Helper()
	claims := jwt.MapClaims{}
	parsed, _, err := jwt.NewParser().ParseUnverified(token, claims)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		claims[k] = v
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = parsed.Header["kid"]
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unsignedToken(t *testing.T, token string) string {
	parts := strings.Split(token, ".")
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	return hdr + "." + parts[1] + "."
}

func TestAccessPolicies(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	if _, err := tv.secrets.SetSecret(ctx, "app", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	sp, secret, err := tv.srv.Authority().CreateServicePrincipal(ctx, "reader", nil)
	if err != nil {
		t.Fatal(err)
	}
	reader := tv.clientFor(sp.ClientID, secret)

	// Nothing is granted implicitly.
	_, err = reader.GetSecret(ctx, "app", "", nil)
	assertDenied(t, err, sp.ObjectID, "get")

	// get without list.
	tv.setPolicy("add", sp.ObjectID, "get")
	if _, err := reader.GetSecret(ctx, "app", "", nil); err != nil {
		t.Errorf("get with get granted: %v", err)
	}
	_, err = reader.NewListSecretPropertiesPager(nil).NextPage(ctx)
	assertDenied(t, err, sp.ObjectID, "list")
	_, err = reader.SetSecret(ctx, "app", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil)
	assertDenied(t, err, sp.ObjectID, "set")

	// Removing the entry takes effect on the next request.
	tv.setPolicy("remove", sp.ObjectID)
	_, err = reader.GetSecret(ctx, "app", "", nil)
	assertDenied(t, err, sp.ObjectID, "get")
}

func assertDenied(t *testing.T, err error, objectID, perm string) {
	t.Helper()
	if statusOf(err) != http.StatusForbidden || codeOf(err) != "Forbidden" {
		t.Fatalf("want 403 Forbidden, got %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "oid="+objectID) || !strings.Contains(msg, "secrets "+perm+" permission") ||
		!strings.Contains(msg, "AccessDenied") {
		t.Errorf("denial does not name the caller and permission: %s", msg)
	}
}

// setPolicy changes an access policy of the default vault through the
// management API, as an administrator.
func (tv *testVault) setPolicy(op, objectID string, secretPerms ...string) {
	tv.t.Helper()
	tok, err := tv.creds.Token(ctxT(tv.t), tv.http, manage.Audience+"/.default")
	if err != nil {
		tv.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"properties": map[string]any{"accessPolicies": []any{map[string]any{
		"tenantId": tv.creds.TenantID, "objectId": objectID,
		"permissions": map[string]any{"secrets": secretPerms},
	}}}})
	resp, out := tv.do("PUT", "/management/vaults/default/accessPolicies/"+op, tok, string(body))
	if resp.StatusCode != http.StatusOK {
		tv.t.Fatalf("%s policy: %d %s", op, resp.StatusCode, out)
	}
}

func TestManagementNeedsAdministrator(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	sp, secret, err := tv.srv.Authority().CreateServicePrincipal(ctx, "not-admin", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := tv.creds
	c.ClientID, c.ClientSecret = sp.ClientID, secret
	tok, err := c.Token(ctx, tv.http, manage.Audience+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"data-plane token", tv.adminToken(), http.StatusUnauthorized},
		{"not an administrator", tok, http.StatusForbidden},
	} {
		resp, body := tv.do("GET", "/management/vaults/default", tc.token, "")
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d: %s", tc.name, resp.StatusCode, tc.want, body)
		}
	}
}
