package keyvault_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/gateway/keyvault"
	"github.com/keygate/keygate/internal/vaulttest"
)

// fetch reads id through a source of clients and returns the condition
// the answer puts the certificate in, failing the test if the error text
// holds the secret's value.
func fetch(t *testing.T, clients *keyvault.Clients, id keyvault.SecretID, value string) (certs.Code, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := keyvault.NewSource(clients, id, keyvault.KeyPair).Fetch(ctx)
	if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") || err != nil && value != "" && strings.Contains(err.Error(), value[:40]) {
		t.Errorf("error holds the secret: %v", err)
	}
	return certs.CodeOf(err), err
}

// TestClassifyAgainstVault makes a real vault and identity agent refuse a
// gateway's managed identity in each way Application Gateway names, and
// checks the condition each answer is classified as.
func TestClassifyAgainstVault(t *testing.T) {
	v := vaulttest.Start(t, nil)
	ca := gwtest.NewCA(t, "CA")
	value := ca.Issue(t, gwtest.ECDSA, "site.example.test").PEM(t)
	version := v.SetSecret("site", value, certs.ContentTypePEM)

	gw := v.StartIdentity("gateway", "web-1", map[string][]string{"secrets": {"get"}})
	stranger, _ := v.CreateIdentity("stranger") // never assigned to web-1
	spare := v.StartIdentity("spare", "web-2", map[string][]string{"secrets": {"get"}})
	vaulttest.UseAgent(t, gw.Agent)
	clients := func(clientID string) *keyvault.Clients {
		c, err := keyvault.NewClients(keyvault.Options{ClientID: clientID, TrustedCAFile: v.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	id, _ := keyvault.ParseSecretID(v.URL + "/secrets/site")
	c := clients(gw.ClientID)

	steps := []struct {
		name   string
		before func()
		want   certs.Code
		after  func()
	}{
		{"readable", nil, certs.OK, nil},
		{"secret disabled", func() { setEnabled(t, v, "site", version, false) }, certs.SecretDisabled,
			func() { setEnabled(t, v, "site", version, true) }},
		{"get revoked", func() { v.SetAccess("default", "remove", gw.PrincipalID, nil) },
			certs.UserAssignedIdentityDoesNotHaveGetPermissionOnKeyVault,
			func() { v.SetAccess("default", "add", gw.PrincipalID, map[string][]string{"secrets": {"get"}}) }},
		{"firewall", func() { v.SetNetworkACLs("default", "Deny", "None", "127.0.0.2") }, certs.KeyVaultHasRestrictedAccess,
			func() { v.SetNetworkACLs("default", "Allow", "None") }},
		{"readable again", nil, certs.OK, nil},
		{"secret deleted", func() {
			if _, err := v.Secrets.DeleteSecret(context.Background(), "site", nil); err != nil {
				t.Fatal(err)
			}
		}, certs.SecretDeletedFromKeyVault, nil},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		if got, err := fetch(t, c, id, value); got != s.want {
			t.Errorf("%s: %s (%v), want %s", s.name, got, err, s.want)
		}
		if s.after != nil {
			s.after()
		}
	}

	// An identity the agent does not hold for this host.
	if got, err := fetch(t, clients(stranger), id, ""); got != certs.UserAssignedManagedIdentityNotFound {
		t.Errorf("identity not assigned to the host: %s (%v)", got, err)
	}

	// The agent gone: the identity cannot be had.
	gw.Agent.Stop()
	if got, err := fetch(t, clients(spare.ClientID), id, ""); got != certs.IdentityUnavailable {
		t.Errorf("agent not answering: %s (%v)", got, err)
	}

	// The vault gone: a token is cached, the vault does not answer.
	v.Stop()
	if got, err := fetch(t, c, id, ""); got != certs.KeyVaultUnreachable {
		t.Errorf("vault stopped: %s (%v)", got, err)
	}
}

// TestClassifyDeletedVault deletes a vault the gateway reads from: keygate
// answers 404 VaultNotFound for a host no vault is served at any more,
// which is KeyVaultSoftDeleted.
func TestClassifyDeletedVault(t *testing.T) {
	v := vaulttest.Start(t, nil)
	teamURL := v.CreateVault("team")
	hc := v.LoopbackClient()
	c, err := keyvault.NewClients(keyvault.Options{HTTPClient: hc, Credential: &keyvault.CredentialOptions{
		Type: "ClientSecret", TenantID: v.Admin.TenantID, ClientID: v.Admin.ClientID,
		AuthorityHost: v.Admin.AuthorityHost, ClientSecretFile: v.WriteClientSecret(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := c.Secrets(teamURL)
	if err != nil {
		t.Fatal(err)
	}
	ca := gwtest.NewCA(t, "CA")
	if _, err := sc.SetSecret(context.Background(), "site", azsecrets.SetSecretParameters{
		Value: to.Ptr(ca.Issue(t, gwtest.ECDSA, "site.example.test").PEM(t))}, nil); err != nil {
		t.Fatal(err)
	}
	id, _ := keyvault.ParseSecretID(teamURL + "/secrets/site")
	if got, err := fetch(t, c, id, ""); got != certs.OK {
		t.Fatalf("before deletion: %s (%v)", got, err)
	}
	v.DeleteVault("team")
	if got, err := fetch(t, c, id, ""); got != certs.KeyVaultSoftDeleted || !strings.Contains(err.Error(), "VaultNotFound") {
		t.Errorf("vault deleted: %s (%v)", got, err)
	}
}

func setEnabled(t *testing.T, v *vaulttest.Vault, name, version string, enabled bool) {
	t.Helper()
	if _, err := v.Secrets.UpdateSecretProperties(context.Background(), name, version, azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(enabled)}}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestClassifyStatusesWithoutAVault covers answers a real keygate vault
// cannot be made to give (throttling, server errors) with made-up
// responses: the classification only reads the status and codes.
func TestClassifyStatusesWithoutAVault(t *testing.T) {
	tests := []struct {
		status int
		code   string
		want   certs.Code
	}{
		{http.StatusTooManyRequests, "Throttled", certs.KeyVaultUnreachable},
		{http.StatusInternalServerError, "InternalError", certs.KeyVaultUnreachable},
		{http.StatusServiceUnavailable, "", certs.KeyVaultUnreachable},
		{http.StatusRequestTimeout, "", certs.KeyVaultUnreachable},
		{http.StatusUnauthorized, "Unauthorized", certs.IdentityAuthenticationFailed},
		{http.StatusBadRequest, "BadParameter", certs.KeyVaultRequestFailed},
		{http.StatusForbidden, "SecretDisabled", certs.SecretDisabled},
	}
	for _, tc := range tests {
		err := &azcore.ResponseError{StatusCode: tc.status, ErrorCode: tc.code}
		if got := keyvault.Classify(err); got != tc.want {
			t.Errorf("%d %s: %s, want %s", tc.status, tc.code, got, tc.want)
		}
	}
	if got := keyvault.Classify(errors.New("dial tcp 127.0.0.1:1: connect: connection refused")); got != certs.KeyVaultUnreachable {
		t.Errorf("dial error: %s", got)
	}
}
