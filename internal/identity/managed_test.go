package identity_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/identity"
	"github.com/keygate/keygate/internal/testkit"
)

func TestManagedIdentityLifecycle(t *testing.T) {
	f := newFixture(t, nil, nil)
	ctx := t.Context()
	mi, err := f.auth.CreateManagedIdentity(ctx, "gateway-fleet", identity.ManagedIdentityOptions{KeygateService: true})
	if err != nil {
		t.Fatalf("CreateManagedIdentity: %v", err)
	}
	for name, id := range map[string]string{"ClientID": mi.ClientID, "PrincipalID": mi.PrincipalID} {
		if u, err := uuid.Parse(id); err != nil || u.Version() != 4 {
			t.Errorf("%s = %q, want a random GUID", name, id)
		}
	}
	if mi.TenantID != f.auth.TenantID() || !strings.HasSuffix(mi.ResourceID, "/userAssignedIdentities/gateway-fleet") {
		t.Errorf("TenantID, ResourceID = %q, %q", mi.TenantID, mi.ResourceID)
	}

	// Names compare case-insensitively.
	got, err := f.auth.ManagedIdentity(ctx, "GATEWAY-fleet")
	if err != nil {
		t.Fatalf("ManagedIdentity: %v", err)
	}
	if diff := cmp.Diff(mi, got); diff != "" {
		t.Errorf("ManagedIdentity (-created +loaded):\n%s", diff)
	}
	if _, err := f.auth.CreateManagedIdentity(ctx, "Gateway-Fleet", identity.ManagedIdentityOptions{}); !errors.Is(err, identity.ErrIdentityExists) {
		t.Errorf("second create: %v, want ErrIdentityExists", err)
	}

	if _, err := f.auth.CreateManagedIdentity(ctx, "other", identity.ManagedIdentityOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := f.auth.ListManagedIdentities(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "gateway-fleet" || list[1].Name != "other" {
		t.Fatalf("ListManagedIdentities = %v, %v", list, err)
	}

	// Deleting an identity unassigns it from its hosts.
	if _, _, err := f.auth.AssignIdentity(ctx, "other", "web-1", 0); err != nil {
		t.Fatal(err)
	}
	if err := f.auth.DeleteManagedIdentity(ctx, "other"); err != nil {
		t.Fatalf("DeleteManagedIdentity: %v", err)
	}
	if _, err := f.auth.ManagedIdentity(ctx, "other"); !errors.Is(err, identity.ErrIdentityNotFound) {
		t.Errorf("after delete: %v, want ErrIdentityNotFound", err)
	}
	h, err := f.auth.Host(ctx, "web-1")
	if err != nil || len(h.Identities) != 0 {
		t.Errorf("host after identity deleted: %+v, %v", h, err)
	}
	if err := f.auth.DeleteManagedIdentity(ctx, "other"); !errors.Is(err, identity.ErrIdentityNotFound) {
		t.Errorf("second delete: %v, want ErrIdentityNotFound", err)
	}
}

func TestManagedIdentityBadNames(t *testing.T) {
	f := newFixture(t, nil, nil)
	for _, name := range []string{"", "ab", "-lead", "sp ace", "slash/y", strings.Repeat("a", 129), "ünï"} {
		before := f.store.(*memStore).raw("identity_managed")
		_, err := f.auth.CreateManagedIdentity(t.Context(), name, identity.ManagedIdentityOptions{})
		if !errors.Is(err, identity.ErrInvalid) || !strings.Contains(err.Error(), "name:") {
			t.Errorf("CreateManagedIdentity(%q) = %v, want ErrInvalid naming the field", name, err)
		}
		if diff := cmp.Diff(before, f.store.(*memStore).raw("identity_managed")); diff != "" {
			t.Errorf("store changed by a refused create:\n%s", diff)
		}
	}
	for _, host := range []string{"", "-x", "a b", "x/y", strings.Repeat("h", 254)} {
		_, _, err := f.auth.AssignIdentity(t.Context(), "whatever", host, 0)
		if !errors.Is(err, identity.ErrInvalid) || !strings.Contains(err.Error(), "host:") {
			t.Errorf("AssignIdentity(host %q) = %v, want ErrInvalid naming the field", host, err)
		}
	}
	if _, err := f.auth.CreateManagedIdentity(t.Context(), "fine", identity.ManagedIdentityOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{time.Second, 3 * 365 * 24 * time.Hour, -time.Hour} {
		_, _, err := f.auth.AssignIdentity(t.Context(), "fine", "web", d)
		if !errors.Is(err, identity.ErrInvalid) || !strings.Contains(err.Error(), "credential lifetime") {
			t.Errorf("AssignIdentity(lifetime %v) = %v, want ErrInvalid", d, err)
		}
	}
	if len(f.store.(*memStore).raw("identity_hosts")) != 0 {
		t.Error("a refused assignment created a host")
	}
}

func TestAssignIdentity(t *testing.T) {
	f := newFixture(t, nil, nil)
	ctx := t.Context()
	for _, n := range []string{"one", "two"} {
		if _, err := f.auth.CreateManagedIdentity(ctx, n, identity.ManagedIdentityOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.auth.AssignIdentity(ctx, "missing", "web-1", 0); !errors.Is(err, identity.ErrIdentityNotFound) {
		t.Errorf("assigning an unknown identity: %v", err)
	}

	h, cred, err := f.auth.AssignIdentity(ctx, "one", "web-1", 0)
	if err != nil {
		t.Fatalf("AssignIdentity: %v", err)
	}
	if !strings.HasPrefix(cred, "kgh_") || len(cred) < 40 {
		t.Errorf("credential %d characters, want kgh_ and 32 random bytes", len(cred))
	}
	if d := h.CredentialExpires.Sub(h.CredentialIssued); d != identity.DefaultCredentialLifetime {
		t.Errorf("credential lifetime %v, want the default", d)
	}
	// A second assignment extends the host and hands out no credential:
	// the host's agent keeps the one it has.
	h, cred2, err := f.auth.AssignIdentity(ctx, "two", "WEB-1", 0)
	if err != nil || cred2 != "" {
		t.Fatalf("second AssignIdentity: credential %d characters, %v", len(cred2), err)
	}
	if diff := cmp.Diff([]string{"one", "two"}, h.Identities); diff != "" {
		t.Errorf("identities (-want +got):\n%s", diff)
	}

	// Only the credential's hash is stored.
	for _, v := range f.store.(*memStore).raw("identity_hosts") {
		if strings.Contains(string(v), cred) || strings.Contains(string(v), strings.TrimPrefix(cred, "kgh_")) {
			t.Errorf("stored host holds the credential: %s", v)
		}
	}

	h, err = f.auth.UnassignIdentity(ctx, "one", "web-1")
	if err != nil || len(h.Identities) != 1 || h.Identities[0] != "two" {
		t.Errorf("UnassignIdentity = %+v, %v", h, err)
	}
	if _, err := f.auth.UnassignIdentity(ctx, "one", "web-1"); !errors.Is(err, identity.ErrIdentityNotFound) {
		t.Errorf("unassigning twice: %v", err)
	}
	hosts, err := f.auth.ListHosts(ctx)
	if err != nil || len(hosts) != 1 || hosts[0].Name != "web-1" {
		t.Errorf("ListHosts = %+v, %v", hosts, err)
	}
	if err := f.auth.DeleteHost(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.auth.Host(ctx, "web-1"); !errors.Is(err, identity.ErrHostNotFound) {
		t.Errorf("after DeleteHost: %v", err)
	}
}

// hostClient calls the authority's host endpoints as an agent would.
type hostClient struct {
	t          *testing.T
	f          *fixture
	host, cred string
}

func (c hostClient) do(method, path string, form url.Values) (int, map[string]any) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.f.srv.URL+"/"+c.f.auth.TenantID()+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.SetBasicAuth(c.host, c.cred)
	resp, err := c.f.srv.Client().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		c.t.Fatalf("%s %s: body is not JSON: %v", method, path, err)
	}
	return resp.StatusCode, out
}

func (c hostClient) token(form url.Values) (int, map[string]any) {
	return c.do(http.MethodPost, "/managedidentity/token", form)
}

func TestHostTokenEndpoint(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	f := newFixtureAt(t, nil, nil, clock.Now)
	ctx := t.Context()
	gw, err := f.auth.CreateManagedIdentity(ctx, "gateway", identity.ManagedIdentityOptions{KeygateService: true})
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.auth.CreateManagedIdentity(ctx, "elsewhere", identity.ManagedIdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, cred, err := f.auth.AssignIdentity(ctx, "gateway", "web-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.auth.AssignIdentity(ctx, "elsewhere", "web-2", 0); err != nil {
		t.Fatal(err)
	}
	c := hostClient{t: t, f: f, host: "web-1", cred: cred}

	// The host's only identity, chosen by default and by each selector.
	for _, form := range []url.Values{
		{"resource": {vaultAudience}},
		{"resource": {vaultAudience}, "client_id": {gw.ClientID}},
		{"resource": {vaultAudience}, "object_id": {strings.ToUpper(gw.PrincipalID)}},
		{"resource": {vaultAudience}, "mi_res_id": {gw.ResourceID}},
	} {
		status, body := c.token(form)
		if status != http.StatusOK {
			t.Fatalf("token %v: %d %v", form, status, body)
		}
		p, err := verifier(f.auth, vaultAudience).Verify(body["access_token"].(string))
		if err != nil {
			t.Fatalf("token does not verify: %v", err)
		}
		if p.ObjectID != gw.PrincipalID || p.ClientID != gw.ClientID || !p.HasRole(authz.RoleService) {
			t.Errorf("token names %+v, want the gateway identity with the service role", p)
		}
		if body["expires_on"] == "" || body["client_id"] != gw.ClientID {
			t.Errorf("response %v lacks expires_on or client_id", body)
		}
	}
	rec := f.audit.last()
	if rec.Operation != "ManagedIdentityToken" || rec.CallerHost != "web-1" || rec.ObjectName != "gateway" ||
		rec.CallerObjectID != gw.PrincipalID || rec.Status != http.StatusOK {
		t.Errorf("audit record of an issued token: %+v", rec)
	}

	// Refusals: the authority, not the agent, enforces assignment.
	for _, tc := range []struct {
		name      string
		c         hostClient
		form      url.Values
		status    int
		errorCode string
	}{
		{"identity of another host", c, url.Values{"resource": {vaultAudience}, "client_id": {other.ClientID}}, 400, "identity_not_assigned"},
		{"unknown identity", c, url.Values{"resource": {vaultAudience}, "object_id": {uuid.NewString()}}, 400, "identity_not_assigned"},
		{"two selectors", c, url.Values{"resource": {vaultAudience}, "client_id": {gw.ClientID}, "object_id": {gw.PrincipalID}}, 400, "invalid_request"},
		{"no resource", c, url.Values{"client_id": {gw.ClientID}}, 400, "invalid_request"},
		{"unknown resource", c, url.Values{"resource": {"https://elsewhere.test"}}, 400, "invalid_resource"},
		{"wrong credential", hostClient{t, f, "web-1", cred + "x"}, url.Values{"resource": {vaultAudience}}, 401, "invalid_client"},
		{"other host's name", hostClient{t, f, "web-2", cred}, url.Values{"resource": {vaultAudience}}, 401, "invalid_client"},
		{"unknown host", hostClient{t, f, "nowhere", cred}, url.Values{"resource": {vaultAudience}}, 401, "invalid_client"},
	} {
		status, body := tc.c.token(tc.form)
		if status != tc.status || body["error"] != tc.errorCode {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, body, tc.status, tc.errorCode)
		}
		if _, ok := body["access_token"]; ok {
			t.Errorf("%s: a token was issued", tc.name)
		}
		if rec := f.audit.last(); rec.Status != tc.status || rec.Reason == "" {
			t.Errorf("%s: audit record %+v, want status %d and a reason", tc.name, rec, tc.status)
		}
	}

	// The host document lists the host's identities only.
	status, body := c.do(http.MethodGet, "/managedidentity/host", nil)
	ids, _ := body["identities"].([]any)
	if status != http.StatusOK || len(ids) != 1 || ids[0].(map[string]any)["clientId"] != gw.ClientID {
		t.Errorf("host document: %d %v", status, body)
	}

	// An expired credential gets nothing, and says so.
	clock.Advance(time.Hour)
	status, body = c.token(url.Values{"resource": {vaultAudience}})
	if status != http.StatusUnauthorized || body["error"] != "credential_expired" {
		t.Errorf("expired credential: %d %v", status, body)
	}

	// Rotation replaces the credential at once.
	_, fresh, err := f.auth.RotateHostCredential(ctx, "web-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := c.token(url.Values{"resource": {vaultAudience}}); status != http.StatusUnauthorized {
		t.Errorf("old credential after rotation: %d", status)
	}
	c.cred = fresh
	if status, body := c.token(url.Values{"resource": {vaultAudience}}); status != http.StatusOK {
		t.Errorf("rotated credential: %d %v", status, body)
	}

	// Nothing logged or audited holds a credential or a token.
	audited, _ := json.Marshal(f.audit.all())
	for _, s := range []string{cred, fresh, strings.TrimPrefix(cred, "kgh_")} {
		if strings.Contains(f.logs.String(), s) || strings.Contains(string(audited), s) {
			t.Errorf("logs or audit hold a credential")
		}
	}
	if strings.Contains(string(audited), "eyJ") || strings.Contains(f.logs.String(), "eyJ") {
		t.Error("logs or audit hold a token")
	}
}

func TestHostTokenNeedsAnIdentity(t *testing.T) {
	f := newFixture(t, nil, nil)
	ctx := t.Context()
	for _, n := range []string{"one", "two"} {
		if _, err := f.auth.CreateManagedIdentity(ctx, n, identity.ManagedIdentityOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	_, cred, err := f.auth.AssignIdentity(ctx, "one", "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.auth.AssignIdentity(ctx, "two", "web", 0); err != nil {
		t.Fatal(err)
	}
	c := hostClient{t: t, f: f, host: "web", cred: cred}
	status, body := c.token(url.Values{"resource": {vaultAudience}})
	if status != http.StatusBadRequest || !strings.Contains(body["error_description"].(string), "2 managed identities") {
		t.Errorf("no selector with two identities: %d %v", status, body)
	}
}
