package vaulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/agent"
	"github.com/keygate/keygate/internal/manage"
)

// Manage calls the vault's management API as the administrator and
// returns the status and the decoded answer; body, when not nil, is sent
// as JSON.
func (v *Vault) Manage(method, path string, body any) (int, map[string]any) {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := v.Admin.Token(ctx, v.HTTP, manage.Audience+"/.default")
	if err != nil {
		v.t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			v.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, v.URL+"/management"+path, rd)
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := v.HTTP.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	json.NewDecoder(resp.Body).Decode(&doc)
	return resp.StatusCode, doc
}

// MustManage is Manage that fails the test unless the status is one of
// want.
func (v *Vault) MustManage(method, path string, body any, want ...int) map[string]any {
	v.t.Helper()
	status, doc := v.Manage(method, path, body)
	for _, w := range want {
		if status == w {
			return doc
		}
	}
	v.t.Fatalf("%s /management%s: %d %v, want %v", method, path, status, doc, want)
	return nil
}

// CreateIdentity creates a user-assigned managed identity and returns its
// client and principal (object) ids.
func (v *Vault) CreateIdentity(name string) (clientID, principalID string) {
	v.t.Helper()
	doc := v.MustManage("PUT", "/identities/"+name, map[string]any{}, http.StatusCreated)
	props := doc["properties"].(map[string]any)
	return props["clientId"].(string), props["principalId"].(string)
}

// SetAccess changes the access policy entry of objectID on the vault
// called vaultName: op is add, replace or remove, perms the permissions by
// kind ("secrets": {"get"}).
func (v *Vault) SetAccess(vaultName, op, objectID string, perms map[string][]string) {
	v.t.Helper()
	if perms == nil {
		perms = map[string][]string{}
	}
	v.MustManage("PUT", "/vaults/"+vaultName+"/accessPolicies/"+op, map[string]any{"properties": map[string]any{
		"accessPolicies": []any{map[string]any{
			"tenantId": v.Admin.TenantID, "objectId": objectID, "permissions": perms,
		}},
	}}, http.StatusOK)
}

// SetNetworkACLs sets the network rules of the vault called vaultName:
// defaultAction Allow or Deny, bypass AzureServices or None, and the
// addresses or ranges allowed.
func (v *Vault) SetNetworkACLs(vaultName, defaultAction, bypass string, ipRules ...string) {
	v.t.Helper()
	rules := []any{}
	for _, r := range ipRules {
		rules = append(rules, map[string]any{"value": r})
	}
	v.MustManage("PATCH", "/vaults/"+vaultName, map[string]any{"properties": map[string]any{
		"networkAcls": map[string]any{"defaultAction": defaultAction, "bypass": bypass, "ipRules": rules},
	}}, http.StatusOK)
}

// CreateVault creates a vault called name, with the administrator allowed
// everything on secrets and certificates, and returns its URL.
func (v *Vault) CreateVault(name string) string {
	v.t.Helper()
	v.MustManage("PUT", "/vaults/"+name, map[string]any{"properties": map[string]any{
		"tenantId": v.Admin.TenantID,
		"accessPolicies": []any{map[string]any{"tenantId": v.Admin.TenantID, "objectId": v.adminObjectID(),
			"permissions": map[string]any{"secrets": []string{"all"}, "certificates": []string{"all"}}}},
	}}, http.StatusCreated)
	return v.VaultURL(name)
}

// DeleteVault deletes the vault called name.
func (v *Vault) DeleteVault(name string) {
	v.t.Helper()
	v.MustManage("DELETE", "/vaults/"+name, nil, http.StatusOK)
}

// adminObjectID is the administrator's object id.
func (v *Vault) adminObjectID() string {
	v.t.Helper()
	sp, err := v.srv.Authority().ServicePrincipal(context.Background(), v.Admin.ClientID)
	if err != nil {
		v.t.Fatal(err)
	}
	return sp.ObjectID
}

// Identity is a managed identity assigned to a host whose identity agent
// runs in the test.
type Identity struct {
	ClientID    string
	PrincipalID string
	Agent       *Agent
}

// Agent is a host's identity agent running in the test.
type Agent struct {
	*agent.Agent
	stop func()
}

// Stop stops the agent, as a host whose agent died; it is safe to call
// twice.
func (a *Agent) Stop() { a.stop() }

// StartIdentity creates the managed identity name, grants it perms on
// the default vault (none when nil), assigns it to host, and runs that
// host's identity agent on a loopback port until the test ends.
func (v *Vault) StartIdentity(name, host string, perms map[string][]string) *Identity {
	v.t.Helper()
	id := &Identity{}
	id.ClientID, id.PrincipalID = v.CreateIdentity(name)
	if perms != nil {
		v.SetAccess("default", "add", id.PrincipalID, perms)
	}
	status, doc := v.Manage("PUT", "/hosts/"+host+"/identities/"+name, nil)
	if status != http.StatusCreated && status != http.StatusOK {
		v.t.Fatalf("assigning %s to %s: %d %v", name, host, status, doc)
	}
	cred, _ := doc["credential"].(string)
	if cred == "" {
		v.t.Fatalf("assigning %s to %s: no credential (host %s already enrolled?)", name, host, host)
	}
	id.Agent = v.StartAgent(host, cred)
	return id
}

// StartAgent runs an identity agent for host with its enrolment
// credential, on a loopback port, until the test ends.
func (v *Vault) StartAgent(host, credential string) *Agent {
	v.t.Helper()
	a, err := agent.New(agent.Config{
		Authority: v.srv.Authority().TenantURL(), Host: host, Credential: credential,
		HTTPClient: v.HTTP, Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewJSONHandler(v.opts.Log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		v.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := a.Open(ctx); err != nil {
		cancel()
		v.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			v.t.Errorf("agent: %v", err)
		}
	})
	v.t.Cleanup(stop)
	return &Agent{Agent: a, stop: stop}
}

// UseAgent points this process's managed identity credentials at a, as
// a host's environment does, until the test ends: azidentity reads
// IDENTITY_ENDPOINT and IDENTITY_HEADER when a credential is made. The
// test must not run in parallel with others.
func UseAgent(t testing.TB, a *Agent) {
	t.Helper()
	t.Setenv("IDENTITY_ENDPOINT", a.Endpoint())
	t.Setenv("IDENTITY_HEADER", a.Header())
}
