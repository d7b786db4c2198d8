package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/server"
)

// TestManagedIdentityReadsSecret is the integration's first steps done
// for real: a user-assigned identity is created and granted get on the
// vault's secrets (as "Key Vault Secrets User"), assigned to a host whose
// agent runs there, and an application with only IDENTITY_ENDPOINT and
// IDENTITY_HEADER in its environment reads the secret through azsecrets
// with ManagedIdentityCredential, and with DefaultAzureCredential. The
// same without the grant is 403; identities not assigned to the host, a
// wrong header, get no token. Every case is audited, and nothing logged
// or audited holds a secret, a credential or a token.
func TestManagedIdentityReadsSecret(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	const value = "mi-probe-secret-value"
	if _, err := tv.secrets.SetSecret(ctx, "gateway-cert", azsecrets.SetSecretParameters{Value: to.Ptr(value)}, nil); err != nil {
		t.Fatal(err)
	}

	gwClient, gwOID := tv.createIdentity("gateway", false)
	_, strangerOID := tv.createIdentity("stranger", false)
	elsewhereClient, _ := tv.createIdentity("elsewhere", false)
	tv.mustManage(http.StatusOK, "POST", "/vaults/default/roleAssignments", map[string]any{"properties": map[string]any{
		"roleDefinitionId": "Key Vault Secrets User", "principalId": gwOID,
	}})
	cred := tv.assign("gateway", "web-1", 0)
	if cred == "" {
		t.Fatal("no credential for a new host")
	}
	if again := tv.assign("stranger", "web-1", 0); again != "" {
		t.Error("extending a host handed out a credential")
	}
	otherCred := tv.assign("elsewhere", "web-2", 0)
	a := tv.startAgent("web-1", cred)

	app := miClientConfig{VaultURL: tv.srv.URL(), Resource: tv.srv.Resource(), CAFile: tv.creds.CAFile, Secret: "gateway-cert"}
	env := a.Environment()
	var tokens []string

	// The granted identity reads the secret, chosen by client id, and
	// through DefaultAzureCredential with AZURE_CLIENT_ID.
	byClient := app
	byClient.ClientID = gwClient
	res := runApp(t, byClient, env...)
	if res.Value != value {
		t.Fatalf("ManagedIdentityCredential: %v", res)
	}
	tokens = append(tokens, res.Token)
	dac := app
	dac.Default = true
	res = runApp(t, dac, append(env, "AZURE_CLIENT_ID="+gwClient)...)
	if res.Value != value {
		t.Fatalf("DefaultAzureCredential: %v", res)
	}
	tokens = append(tokens, res.Token)
	rec := tv.mustFindAudit("the identity's read", func(r audit.Record) bool {
		return r.Operation == "SecretGet" && r.CallerObjectID == gwOID && r.Status == 200
	})
	if rec.Vault != "default" || rec.ObjectName != "gateway-cert" || rec.CallerAddress != "127.0.0.1" || rec.RequestID == "" {
		t.Errorf("audit record of the read: %+v", rec)
	}

	// The same identity without the grant: a token, and 403.
	tv.setPolicy("remove", gwOID)
	res = runApp(t, byClient, env...)
	if res.Token == "" || res.Status != http.StatusForbidden || res.ErrorCode != "Forbidden" || res.Value != "" {
		t.Fatalf("identity after its grant was removed: %v", res)
	}
	tokens = append(tokens, res.Token)
	rec = tv.mustFindAudit("the revoked identity's denial", func(r audit.Record) bool {
		return r.Operation == "SecretGet" && r.CallerObjectID == gwOID && r.Status == 403
	})
	if !strings.Contains(rec.Reason, "oid="+gwOID) {
		t.Errorf("audit record of the denial: %+v", rec)
	}

	// An identity assigned to the host but never granted anything: 403.
	stranger := app
	stranger.ObjectID = strangerOID
	res = runApp(t, stranger, env...)
	if res.Token == "" || res.Status != http.StatusForbidden || res.ErrorCode != "Forbidden" || res.Value != "" {
		t.Fatalf("identity without the grant: %v", res)
	}
	tokens = append(tokens, res.Token)
	rec = tv.mustFindAudit("the ungranted read", func(r audit.Record) bool {
		return r.Operation == "SecretGet" && r.CallerObjectID == strangerOID
	})
	if rec.Status != 403 || !strings.Contains(rec.Reason, "does not have secrets get permission") {
		t.Errorf("audit record of the denial: %+v", rec)
	}

	// An identity of another host gets no token.
	elsewhere := app
	elsewhere.ClientID = elsewhereClient
	res = runApp(t, elsewhere, env...)
	if res.Token != "" || !strings.Contains(res.TokenErr, "identity_not_assigned") {
		t.Fatalf("identity not assigned to the host: %v", res)
	}
	tv.mustFindAudit("the unassigned identity's refusal", func(r audit.Record) bool {
		return r.Source == audit.SourceAgent && r.Status == 400 && strings.Contains(r.Reason, elsewhereClient)
	})

	// A wrong header gets no token.
	res = runApp(t, byClient, env[0], "IDENTITY_HEADER=not-the-header")
	if res.Token != "" || !strings.Contains(res.TokenErr, "header is wrong") {
		t.Fatalf("wrong header: %v", res)
	}
	tv.mustFindAudit("the wrong header's refusal", func(r audit.Record) bool {
		return r.Source == audit.SourceAgent && r.Status == 401 && strings.Contains(r.Reason, "header is wrong")
	})

	// Nothing logged or audited holds secret material.
	probes := append(tokens, value, cred, otherCred, a.Header(), tv.creds.ClientSecret)
	scanForSecrets(t, tv, probes)
}

// scanForSecrets searches everything tv's server and agents logged and
// audited for each of probes.
func scanForSecrets(t *testing.T, tv *testVault, probes []string) {
	t.Helper()
	logs, audited := tv.logs.String(), tv.audit.String()
	if len(audited) == 0 || len(logs) == 0 {
		t.Fatal("nothing was logged or audited: the scan would prove nothing")
	}
	for _, p := range probes {
		if p == "" {
			t.Fatal("empty probe: the scan would prove nothing")
		}
		if strings.Contains(logs, p) || strings.Contains(audited, p) {
			t.Errorf("logs or audit hold secret material (%d characters, starting %.4q)", len(p), p)
		}
	}
}

// TestExpiredEnrolmentCredential lets a host's enrolment credential
// expire: its agent gets no more tokens for it, and says why.
func TestExpiredEnrolmentCredential(t *testing.T) {
	tv := startVault(t, "")
	gwClient, gwOID := tv.createIdentity("gateway", false)
	tv.setPolicy("add", gwOID, "get")
	if _, err := tv.secrets.SetSecret(ctxT(t), "s", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	cred := tv.assign("gateway", "web-1", 2*time.Minute)
	a := tv.startAgent("web-1", cred)
	app := miClientConfig{VaultURL: tv.srv.URL(), Resource: tv.srv.Resource(), CAFile: tv.creds.CAFile,
		Secret: "s", ClientID: gwClient}
	if res := runApp(t, app, a.Environment()...); res.Value != "v" {
		t.Fatalf("before expiry: %v", res)
	}

	tv.clock.Advance(3 * time.Minute)
	res := runApp(t, app, a.Environment()...)
	if res.Token != "" || !strings.Contains(res.TokenErr, "expired") {
		t.Fatalf("after expiry: %v", res)
	}
	tv.mustFindAudit("the expired credential's refusal", func(r audit.Record) bool {
		return r.Source == audit.SourceAgent && r.Status == 401 && strings.Contains(r.Reason, "expired")
	})

	// The authority refuses the credential too, whatever an agent does.
	req, _ := http.NewRequest(http.MethodPost, tv.srv.Authority().TenantURL()+"/managedidentity/token",
		strings.NewReader("resource="+tv.srv.Resource()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web-1", cred)
	resp, err := tv.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || body["error"] != "credential_expired" {
		t.Errorf("authority with an expired credential: %d %v", resp.StatusCode, body)
	}
	tv.mustFindAudit("the authority's refusal", func(r audit.Record) bool {
		return r.Source == audit.SourceAuthority && r.CallerHost == "web-1" && r.Status == 401
	})
	scanForSecrets(t, tv, []string{cred, a.Header()})
}

// TestLocalAgent runs the server as `keygate up` does, with its own agent:
// an application with the environment the server reports reads the
// default vault's secrets with the only identity, and a restart keeps the
// header and the credential.
func TestLocalAgent(t *testing.T) {
	dir := t.TempDir() + "/data"
	withAgent := func(c *server.Config) { c.AgentListen = "127.0.0.1:0" }
	tv := startVault(t, dir, withAgent)
	if _, err := tv.secrets.SetSecret(ctxT(t), "hello", azsecrets.SetSecretParameters{Value: to.Ptr("world")}, nil); err != nil {
		t.Fatal(err)
	}
	env := tv.srv.AgentEnvironment()
	if len(env) != 2 || !strings.HasPrefix(env[0], "IDENTITY_ENDPOINT=http://127.0.0.1:") || !strings.HasPrefix(env[1], "IDENTITY_HEADER=") {
		t.Fatalf("agent environment %q", env)
	}
	app := miClientConfig{VaultURL: tv.srv.URL(), Resource: tv.srv.Resource(), CAFile: tv.creds.CAFile, Secret: "hello"}
	res := runApp(t, app, env...)
	if res.Value != "world" {
		t.Fatalf("through the local agent: %v", res)
	}

	// The local identity has get on secrets, and nothing else.
	doc := tv.mustManage(http.StatusOK, "GET", "/identities/"+server.LocalIdentity, nil)
	oid := doc["properties"].(map[string]any)["principalId"].(string)
	v := tv.mustManage(http.StatusOK, "GET", "/vaults/default", nil)
	var found bool
	for _, p := range v["properties"].(map[string]any)["accessPolicies"].([]any) {
		p := p.(map[string]any)
		if p["objectId"] == oid {
			found = true
			perms, _ := json.Marshal(p["permissions"])
			if string(perms) != `{"secrets":["get"]}` {
				t.Errorf("local identity's permissions %s, want get on secrets only", perms)
			}
		}
	}
	if !found {
		t.Error("the local identity has no access policy")
	}
	credBefore := mustReadFile(t, dir+"/agent/credential")

	// A restart: same header, same credential, still working.
	tv.stop()
	tv2 := startVault(t, dir, withAgent)
	env2 := tv2.srv.AgentEnvironment()
	if env2[1] != env[1] {
		t.Error("the restarted agent has another IDENTITY_HEADER: clients started before would break")
	}
	if string(mustReadFile(t, dir+"/agent/credential")) != string(credBefore) {
		t.Error("the restart replaced a credential that was still good")
	}
	app.VaultURL, app.Resource = tv2.srv.URL(), tv2.srv.Resource()
	if res := runApp(t, app, env2...); res.Value != "world" {
		t.Fatalf("after restart: %v", res)
	}
}

// TestKeygateServiceRole checks that a keygate-service identity's tokens
// carry the role its vault bypass needs.
func TestKeygateServiceRole(t *testing.T) {
	tv := startVault(t, "")
	svcClient, svcOID := tv.createIdentity("gateway-fleet", true)
	cred := tv.assign("gateway-fleet", "gw-1", 0)
	tv.setPolicy("add", svcOID, "get")
	tv.mustManage(http.StatusOK, "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{
		"networkAcls": map[string]any{"defaultAction": "Deny", "bypass": "AzureServices", "ipRules": []any{}},
	}})
	if _, err := tv.secrets.SetSecret(ctxT(t), "s", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); statusOf(err) != http.StatusForbidden {
		t.Fatalf("the administrator through the closed firewall: %v", err)
	}
	// The firewall shut the administrator out too; open it long enough to
	// set the secret.
	tv.mustManage(http.StatusOK, "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{
		"networkAcls": map[string]any{"defaultAction": "Allow"},
	}})
	if _, err := tv.secrets.SetSecret(ctxT(t), "s", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	tv.mustManage(http.StatusOK, "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{
		"networkAcls": map[string]any{"defaultAction": "Deny", "bypass": "AzureServices"},
	}})

	a := tv.startAgent("gw-1", cred)
	app := miClientConfig{VaultURL: tv.srv.URL(), Resource: tv.srv.Resource(), CAFile: tv.creds.CAFile,
		Secret: "s", ClientID: svcClient}
	if res := runApp(t, app, a.Environment()...); res.Value != "v" {
		t.Fatalf("keygate service through the bypass: %v", res)
	}
	rec := tv.mustFindAudit("the service's read", func(r audit.Record) bool {
		return r.Operation == "SecretGet" && r.CallerObjectID == svcOID
	})
	if rec.Status != 200 {
		t.Errorf("audit record: %+v", rec)
	}
}
