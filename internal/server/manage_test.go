package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/manage"
	"github.com/keygate/keygate/internal/pki"
	"github.com/keygate/keygate/internal/server"
)

// props returns the properties of a vault document.
func props(doc map[string]any) map[string]any {
	p, _ := doc["properties"].(map[string]any)
	return p
}

// loopbackClient returns an HTTP client like tv's that sends every
// connection to the server's loopback address, whatever host name it is
// for, as a hosts-file entry would: no resolver here knows the names.
func (tv *testVault) loopbackClient() *http.Client {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(tv.srv.URL(), "https://"))
	tr := tv.http.Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}
	return &http.Client{Transport: tr}
}

// certificatesAt returns an administrator's azcertificates client for
// vaultURL, reached through loopbackClient.
func (tv *testVault) certificatesAt(vaultURL string) *azcertificates.Client {
	tv.t.Helper()
	hc := tv.loopbackClient()
	cred, err := tv.creds.Credential(hc)
	if err != nil {
		tv.t.Fatal(err)
	}
	c, err := azcertificates.NewClient(vaultURL, cred, &azcertificates.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: hc},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		tv.t.Fatal(err)
	}
	return c
}

// secretsAt returns an administrator's azsecrets client for vaultURL,
// reached through loopbackClient.
func (tv *testVault) secretsAt(vaultURL string, verify bool) *azsecrets.Client {
	tv.t.Helper()
	hc := tv.loopbackClient()
	cred, err := tv.creds.Credential(hc)
	if err != nil {
		tv.t.Fatal(err)
	}
	c, err := azsecrets.NewClient(vaultURL, cred, &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: hc},
		DisableChallengeResourceVerification: !verify,
	})
	if err != nil {
		tv.t.Fatal(err)
	}
	return c
}

func TestVaultLifecycle(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	adminOID := tv.adminObjectID()

	// Create, with Azure's body.
	doc := tv.mustManage(http.StatusCreated, "PUT", "/vaults/Team", map[string]any{
		"location": "westeurope",
		"properties": map[string]any{
			"tenantId": tv.creds.TenantID, "sku": map[string]any{"family": "A", "name": "standard"},
			"softDeleteRetentionInDays": 30, "enabledForTemplateDeployment": true,
			"accessPolicies": []any{map[string]any{"tenantId": tv.creds.TenantID, "objectId": adminOID,
				"permissions": map[string]any{"secrets": []string{"all"}, "certificates": []string{"all"}}}},
		},
	})
	p := props(doc)
	if doc["name"] != "team" || p["softDeleteRetentionInDays"] != 30.0 || p["enabledForTemplateDeployment"] != true ||
		p["enableSoftDelete"] != true || !strings.HasPrefix(p["vaultUri"].(string), "https://team.localhost:") {
		t.Errorf("created vault: %v", doc)
	}
	acls := p["networkAcls"].(map[string]any)
	if acls["defaultAction"] != "Allow" || acls["bypass"] != "AzureServices" {
		t.Errorf("new vault's networkAcls %v, want Azure's defaults", acls)
	}
	// PUT on an existing vault updates the properties given, and no others.
	again := tv.mustManage(http.StatusOK, "PUT", "/vaults/team", map[string]any{})
	if diff := cmp.Diff(doc, again); diff != "" {
		t.Errorf("an empty PUT changed the vault (-before +after):\n%s", diff)
	}

	list := tv.mustManage(http.StatusOK, "GET", "/vaults", nil)["value"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["name"] != "default" || list[1].(map[string]any)["name"] != "team" {
		t.Errorf("vault list: %v", list)
	}

	// The vault is served at its own host name, apart from the default.
	team := tv.secretsAt(p["vaultUri"].(string), false)
	got, err := team.SetSecret(ctx, "only-in-team", azsecrets.SetSecretParameters{Value: to.Ptr("team-value")}, nil)
	if err != nil {
		t.Fatalf("SetSecret in team: %v", err)
	}
	if !strings.HasPrefix(string(*got.ID), "https://team.localhost:") {
		t.Errorf("id %s is not under the vault's host", *got.ID)
	}
	if _, err := tv.secrets.GetSecret(ctx, "only-in-team", "", nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("team's secret in the default vault: %v", err)
	}
	rec := tv.mustFindAudit("the write to team", func(r audit.Record) bool { return r.Operation == "SecretSet" && r.Vault == "team" })
	if rec.ObjectName != "only-in-team" || rec.CallerObjectID != adminOID {
		t.Errorf("audit record of the write: %+v", rec)
	}

	// Update: retention and template deployment.
	doc = tv.mustManage(http.StatusOK, "PATCH", "/vaults/team", map[string]any{"properties": map[string]any{
		"softDeleteRetentionInDays": 7, "enabledForTemplateDeployment": false,
	}})
	if props(doc)["softDeleteRetentionInDays"] != 7.0 || props(doc)["enabledForTemplateDeployment"] != false {
		t.Errorf("patched vault: %v", doc)
	}
	if _, err := team.DeleteSecret(ctx, "only-in-team", nil); err != nil {
		t.Fatal(err)
	}
	if d, err := team.GetDeletedSecret(ctx, "only-in-team", nil); err != nil || *d.Attributes.RecoverableDays != 7 {
		t.Errorf("deleted secret after retention change: %v", err)
	}

	// A certificate in team, created by policy; its audit records name
	// Key Vault's operations.
	certs := tv.certificatesAt(p["vaultUri"].(string))
	pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, "Self", "team.example", "application/x-pem-file")
	if _, err := certs.CreateCertificate(ctx, "team-cert", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
		t.Fatalf("CreateCertificate in team: %v", err)
	}
	waitOperation(t, certs, "team-cert", notInProgress)
	if _, err := certs.GetCertificate(ctx, "team-cert", "", nil); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"CertificateCreate", "CertificatePendingGet", "CertificateGet"} {
		rec := tv.mustFindAudit(op, func(r audit.Record) bool { return r.Operation == op && r.Vault == "team" })
		if rec.ObjectName != "team-cert" || rec.Status >= 300 {
			t.Errorf("audit record of %s: %+v", op, rec)
		}
	}

	// Delete and purge: everything in it goes, and a new vault of that
	// name is empty. (vault_softdelete_test.go tests what comes between.)
	tv.mustManage(http.StatusOK, "DELETE", "/vaults/team", nil)
	tv.mustManage(http.StatusNotFound, "GET", "/vaults/team", nil)
	if _, err := team.GetSecret(ctx, "x", "", nil); statusOf(err) != http.StatusNotFound || codeOf(err) != "VaultNotFound" {
		t.Errorf("data plane of a deleted vault: %v", err)
	}
	tv.mustManage(http.StatusOK, "POST", "/deletedVaults/team/purge", nil)
	tv.mustManage(http.StatusCreated, "PUT", "/vaults/team", map[string]any{"properties": map[string]any{
		"accessPolicies": []any{map[string]any{"tenantId": tv.creds.TenantID, "objectId": adminOID,
			"permissions": map[string]any{"secrets": []string{"all"}, "certificates": []string{"all"}}}},
	}})
	if _, err := team.GetDeletedSecret(ctx, "only-in-team", nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("a new vault of a deleted vault's name holds its deleted secret: %v", err)
	}
	if _, err := certs.GetCertificate(ctx, "team-cert", "", nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("a new vault of a deleted vault's name holds its certificate: %v", err)
	}
	tv.mustManage(http.StatusBadRequest, "DELETE", "/vaults/default", nil)

	// Every change is audited, with the administrator as caller.
	for _, op := range []string{"VaultPut", "VaultPatch", "VaultDelete", "DeletedVaultPurge"} {
		rec := tv.mustFindAudit(op, func(r audit.Record) bool {
			return r.Source == audit.SourceManagement && r.Operation == op
		})
		if rec.CallerObjectID != adminOID || rec.Vault == "" || rec.CallerAddress != "127.0.0.1" {
			t.Errorf("audit record of %s: %+v", op, rec)
		}
	}
}

// TestVaultByHostName serves vaults under a DNS name: vault team of the
// server kv.vault.keygate.test is team.vault.keygate.test, and the SDK
// keeps challenge verification on.
func TestVaultByHostName(t *testing.T) {
	tv := startVault(t, "", func(c *server.Config) { c.Hostname = "kv.vault.keygate.test" })
	tv.http = tv.loopbackClient()
	adminOID := tv.adminObjectID()
	doc := tv.mustManage(http.StatusCreated, "PUT", "/vaults/team", map[string]any{"properties": map[string]any{
		"accessPolicies": []any{map[string]any{"tenantId": tv.creds.TenantID, "objectId": adminOID,
			"permissions": map[string]any{"secrets": []string{"all"}}}},
	}})
	uri := props(doc)["vaultUri"].(string)
	if !strings.HasPrefix(uri, "https://team.vault.keygate.test:") {
		t.Fatalf("vaultUri %s", uri)
	}
	c := tv.secretsAt(uri, true)
	ctx := ctxT(t)
	if _, err := c.SetSecret(ctx, "named", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatalf("SetSecret with verification on: %v", err)
	}
	if got, err := tv.secretsAt(uri, true).GetSecret(ctx, "named", "", nil); err != nil || *got.Value != "v" {
		t.Errorf("GetSecret: %v", err)
	}
	// The server's own first label names the default vault.
	status, body := tv.manage("PUT", "/vaults/kv", nil)
	if status != http.StatusBadRequest || !strings.Contains(body["error"].(map[string]any)["message"].(string), "default vault") {
		t.Errorf("creating vault kv: %d %v", status, body)
	}
}

// TestVaultBadInput sends bad properties and checks that each is refused
// with a message naming the field, and that the vault is unchanged.
func TestVaultBadInput(t *testing.T) {
	tv := startVault(t, "")
	before := tv.mustManage(http.StatusOK, "GET", "/vaults/default", nil)
	for _, tc := range []struct {
		name, method, path string
		body               any
		field              string
	}{
		{"retention too short", "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{"softDeleteRetentionInDays": 5}}, "softDeleteRetentionInDays"},
		{"retention too long", "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{"softDeleteRetentionInDays": 91}}, "softDeleteRetentionInDays"},
		{"soft delete off", "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{"enableSoftDelete": false}}, "enableSoftDelete"},
		{"retention not a number", "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{"softDeleteRetentionInDays": "ten"}}, "softDeleteRetentionInDays"},
		{"unknown property", "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{"enablePurgeProtektion": true}}, "enablePurgeProtektion"},
		{"bad default action", "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{"networkAcls": map[string]any{"defaultAction": "Block"}}}, "networkAcls.defaultAction"},
		{"bad ip rule", "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{"networkAcls": map[string]any{"defaultAction": "Deny", "ipRules": []any{map[string]any{"value": "10.0.0.256"}}}}}, "networkAcls.ipRules[0].value"},
		{"virtual network rules", "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{"networkAcls": map[string]any{"virtualNetworkRules": []any{}}}}, "virtualNetworkRules"},
		{"other tenant", "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{"tenantId": "00000000-0000-0000-0000-000000000000"}}, "properties.tenantId"},
		{"bad access policy", "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{"accessPolicies": []any{map[string]any{"tenantId": "t", "objectId": "o", "permissions": map[string]any{"secrets": []string{"gett"}}}}}}, "accessPolicies[0].permissions.secrets[0]"},
		{"bad network rule", "POST", "/vaults/default/networkRules/add", map[string]any{"ipRules": []any{map[string]any{"value": "not-an-address"}}}, "networkAcls.ipRules[0].value"},
		{"no network rules", "POST", "/vaults/default/networkRules/add", map[string]any{"ipRules": []any{}}, "ipRules"},
		{"unknown network operation", "POST", "/vaults/default/networkRules/replace", map[string]any{"ipRules": []any{map[string]any{"value": "10.0.0.1"}}}, "operation"},
		{"unknown role", "POST", "/vaults/default/roleAssignments", map[string]any{"properties": map[string]any{"roleDefinitionId": "Key Vault Administrator", "principalId": "x"}}, "properties.roleDefinitionId"},
		{"role without principal", "POST", "/vaults/default/roleAssignments", map[string]any{"properties": map[string]any{"roleDefinitionId": "Key Vault Secrets User"}}, "properties.principalId"},
		{"trailing data", "PATCH", "/vaults/default", "{}x", "body"},
		{"empty tag name", "PATCH", "/vaults/default", map[string]any{"tags": map[string]any{"": "x"}}, "tags"},
		{"purge protection off", "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{"enablePurgeProtection": "no"}}, "enablePurgeProtection"},
		{"bad vault name", "PUT", "/vaults/a--b", map[string]any{}, "vault name"},
		{"vault name too long", "PUT", "/vaults/" + strings.Repeat("v", 25), map[string]any{}, "vault name"},
	} {
		status, body := tv.manage(tc.method, tc.path, tc.body)
		msg, _ := body["error"].(map[string]any)["message"].(string)
		if status != http.StatusBadRequest || !strings.Contains(msg, tc.field) {
			t.Errorf("%s: %d %q, want 400 naming %s", tc.name, status, msg, tc.field)
		}
	}
	status, _ := tv.manage("POST", "/vaults/default/networkRules/remove", map[string]any{"ipRules": []any{map[string]any{"value": "10.9.9.9"}}})
	if status != http.StatusNotFound {
		t.Errorf("removing a rule the vault lacks: %d, want 404", status)
	}
	after := tv.mustManage(http.StatusOK, "GET", "/vaults/default", nil)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("refused requests changed the vault (-before +after):\n%s", diff)
	}
	if list := tv.mustManage(http.StatusOK, "GET", "/vaults", nil)["value"].([]any); len(list) != 1 {
		t.Errorf("refused creations left vaults behind: %v", list)
	}
}

func TestNetworkRuleEndpoints(t *testing.T) {
	tv := startVault(t, "")
	acls := tv.mustManage(http.StatusOK, "POST", "/vaults/default/networkRules/add",
		map[string]any{"ipRules": []any{map[string]any{"value": "10.1.0.0/16"}, map[string]any{"value": "2001:db8::1"}}})
	want := map[string]any{"defaultAction": "Allow", "bypass": "AzureServices",
		"ipRules": []any{map[string]any{"value": "10.1.0.0/16"}, map[string]any{"value": "2001:db8::1/128"}}}
	if diff := cmp.Diff(want, acls); diff != "" {
		t.Errorf("after add (-want +got):\n%s", diff)
	}
	acls = tv.mustManage(http.StatusOK, "POST", "/vaults/default/networkRules/remove",
		map[string]any{"ipRules": []any{map[string]any{"value": "2001:db8::1"}}})
	if rules := acls["ipRules"].([]any); len(rules) != 1 {
		t.Errorf("after remove: %v", acls)
	}
	if got := tv.mustManage(http.StatusOK, "GET", "/vaults/default/networkRules", nil); got["ipRules"].([]any)[0].(map[string]any)["value"] != "10.1.0.0/16" {
		t.Errorf("list: %v", got)
	}
	tv.mustFindAudit("the rule change", func(r audit.Record) bool {
		return r.Operation == "VaultNetworkRuleUpdate" && r.ObjectName == "2001:db8::1" && r.Status == 200
	})
}

// TestRoleShorthand grants "Key Vault Secrets User", which is get on
// secrets and nothing more.
func TestRoleShorthand(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	sp, secret, err := tv.srv.Authority().CreateServicePrincipal(ctx, "reader", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tv.secrets.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	reader := tv.clientFor(sp.ClientID, secret)
	if _, err := reader.GetSecret(ctx, "s", "", nil); statusOf(err) != http.StatusForbidden {
		t.Fatalf("before the grant: %v (nothing is granted implicitly)", err)
	}
	tv.mustManage(http.StatusOK, "POST", "/vaults/default/roleAssignments", map[string]any{"properties": map[string]any{
		"roleDefinitionId": "/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6",
		"principalId":      sp.ObjectID,
	}})
	if got, err := reader.GetSecret(ctx, "s", "", nil); err != nil || *got.Value != "v" {
		t.Errorf("after the grant: %v", err)
	}
	pager := reader.NewListSecretPropertiesPager(nil)
	if _, err := pager.NextPage(ctx); statusOf(err) != http.StatusForbidden {
		t.Errorf("list with Key Vault Secrets User: %v, want 403", err)
	}
	if _, err := reader.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: to.Ptr("w")}, nil); statusOf(err) != http.StatusForbidden {
		t.Errorf("set with Key Vault Secrets User: %v, want 403", err)
	}
}

func TestIdentityEndpoints(t *testing.T) {
	tv := startVault(t, "")
	clientID, oid := tv.createIdentity("gateway", true)
	doc := tv.mustManage(http.StatusOK, "GET", "/identities/gateway", nil)
	if doc["type"] != "Microsoft.ManagedIdentity/userAssignedIdentities" || props(doc)["clientId"] != clientID ||
		props(doc)["principalId"] != oid || props(doc)["keygateService"] != true || props(doc)["tenantId"] != tv.creds.TenantID {
		t.Errorf("identity: %v", doc)
	}
	tv.mustManage(http.StatusConflict, "PUT", "/identities/gateway", nil)
	tv.mustManage(http.StatusBadRequest, "PUT", "/identities/no", nil)
	tv.createIdentity("other", false)

	status, enrol := tv.manage("PUT", "/hosts/web-1/identities/gateway", nil)
	cred, _ := enrol["credential"].(string)
	if status != http.StatusCreated || !strings.HasPrefix(cred, "kgh_") || enrol["authority"] != tv.srv.Authority().TenantURL() {
		t.Fatalf("assign to a new host: %d %v", status, enrol)
	}
	status, enrol = tv.manage("PUT", "/hosts/web-1/identities/other", nil)
	if status != http.StatusOK || enrol["credential"] != nil {
		t.Errorf("assign to a known host: %d %v", status, enrol)
	}
	host := tv.mustManage(http.StatusOK, "GET", "/hosts/web-1", nil)
	if diff := cmp.Diff([]any{"gateway", "other"}, host["identities"]); diff != "" {
		t.Errorf("host identities (-want +got):\n%s", diff)
	}
	rotated := tv.mustManage(http.StatusOK, "POST", "/hosts/web-1/credential", map[string]any{"credentialLifetimeSeconds": 3600})
	fresh, _ := rotated["credential"].(string)
	if fresh == "" || fresh == cred {
		t.Errorf("rotation gave no new credential")
	}
	tv.mustManage(http.StatusBadRequest, "POST", "/hosts/web-1/credential", map[string]any{"credentialLifetimeSeconds": 1})
	tv.mustManage(http.StatusNotFound, "PUT", "/hosts/web-1/identities/missing", nil)
	tv.mustManage(http.StatusOK, "DELETE", "/hosts/web-1/identities/other", nil)
	tv.mustManage(http.StatusOK, "DELETE", "/identities/other", nil)
	tv.mustManage(http.StatusOK, "DELETE", "/hosts/web-1", nil)
	tv.mustManage(http.StatusNotFound, "GET", "/hosts/web-1", nil)

	for _, op := range []string{"IdentityCreate", "HostIdentityAssign", "HostCredentialIssue", "HostIdentityUnassign", "IdentityDelete", "HostDelete"} {
		tv.mustFindAudit(op, func(r audit.Record) bool { return r.Operation == op && r.ObjectName != "" })
	}
	scanForSecrets(t, tv, []string{cred, fresh, tv.creds.ClientSecret})
}

// TestManagementAudited checks that refused management calls are audited
// too, with the reason.
func TestManagementAudited(t *testing.T) {
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
	status, _ := tv.manageAs(tok, "DELETE", "/vaults/default", nil)
	if status != http.StatusForbidden {
		t.Fatalf("non-administrator: %d", status)
	}
	rec := tv.mustFindAudit("the refused call", func(r audit.Record) bool { return r.Operation == "VaultDelete" })
	if rec.Status != 403 || rec.CallerObjectID != sp.ObjectID || !strings.Contains(rec.Reason, "not a keygate administrator") {
		t.Errorf("audit record: %+v", rec)
	}
	status, _ = tv.manageAs("", "GET", "/vaults", nil)
	rec = tv.mustFindAudit("the unauthenticated call", func(r audit.Record) bool { return r.Operation == "VaultList" })
	if status != 401 || rec.Status != 401 || rec.Reason == "" {
		t.Errorf("unauthenticated: %d, audit %+v", status, rec)
	}
	raw, _ := json.Marshal(tv.auditRecords())
	if strings.Contains(string(raw), tok) || strings.Contains(string(raw), secret) {
		t.Error("the audit log holds a token or a client secret")
	}
}

// TestSigningKeyRotationAPI rotates the token signing key through the
// management API: the key is listed, bad delays are refused with nothing
// added, and a token signed by the new key is accepted once it activates.
func TestSigningKeyRotationAPI(t *testing.T) {
	tv := startVault(t, "")
	keys := func() []any { return tv.mustManage(http.StatusOK, "GET", "/signingKeys", nil)["value"].([]any) }
	if n := len(keys()); n != 1 {
		t.Fatalf("a new vault has %d signing keys, want 1", n)
	}
	for _, bad := range []string{`{"activationDelaySeconds": -5}`, `{"activationDelaySeconds": 99999999}`, `{"activationDelaySeconds": "soon"}`} {
		status, doc := tv.manage("POST", "/signingKeys/rotate", bad)
		if status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(doc), "activationDelaySeconds") {
			t.Errorf("rotate with %s: %d %v, want 400 naming activationDelaySeconds", bad, status, doc)
		}
	}
	if n := len(keys()); n != 1 {
		t.Fatalf("refused rotations left %d signing keys, want 1", n)
	}

	added := tv.mustManage(http.StatusCreated, "POST", "/signingKeys/rotate", map[string]any{"activationDelaySeconds": 60})
	list := keys()
	if len(list) != 2 || list[1].(map[string]any)["kid"] != added["kid"] || list[1].(map[string]any)["active"] != false {
		t.Fatalf("after rotating: %v, want the new key listed, not yet active", list)
	}
	tv.clock.Advance(2 * time.Minute)
	tv.connect() // a fresh token, signed by the new key
	if _, err := tv.secrets.SetSecret(ctxT(t), "after-rotation", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Errorf("a token of the new key: %v", err)
	}
	if kid := tokenKID(t, tv.adminToken()); kid != added["kid"] {
		t.Errorf("tokens are signed by %s after activation, want %v", kid, added["kid"])
	}
}
