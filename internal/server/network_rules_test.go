package server_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/server"
)

// setNetworkACLs replaces the default vault's network rules.
func (tv *testVault) setNetworkACLs(defaultAction, bypass string, rules ...string) {
	tv.t.Helper()
	ipRules := []any{}
	for _, r := range rules {
		ipRules = append(ipRules, map[string]any{"value": r})
	}
	tv.mustManage(http.StatusOK, "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{
		"networkAcls": map[string]any{"defaultAction": defaultAction, "bypass": bypass, "ipRules": ipRules},
	}})
}

// firewallDenial checks that err is Key Vault's firewall refusal of addr.
func firewallDenial(t *testing.T, err error, addr string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || re.ErrorCode != "Forbidden" {
		t.Fatalf("want 403 Forbidden from the firewall, got %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "ForbiddenByFirewall") || !strings.Contains(msg, "Client address: "+addr) {
		t.Errorf("firewall denial does not carry ForbiddenByFirewall and the address %s: %s", addr, msg)
	}
}

func TestNetworkRulesDefaultDeny(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	if _, err := tv.secrets.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	tv.setNetworkACLs("Deny", "None", "127.0.0.1")

	// 127.0.0.1 is allowed; 127.0.0.2 is refused, with its address.
	if _, err := tv.secretsFrom("127.0.0.1", tv.srv.URL()).GetSecret(ctx, "s", "", nil); err != nil {
		t.Errorf("from 127.0.0.1: %v", err)
	}
	_, err := tv.secretsFrom("127.0.0.2", tv.srv.URL()).GetSecret(ctx, "s", "", nil)
	firewallDenial(t, err, "127.0.0.2")

	// Before authentication: a request without a token gets 403, not the
	// bearer challenge.
	resp, body := tv.doFrom("127.0.0.2", "GET", "/secrets/s?api-version=7.5", "")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("WWW-Authenticate") != "" ||
		resp.Header.Get("x-ms-error-code") != "Forbidden" || !strings.Contains(body, `"ForbiddenByFirewall"`) {
		t.Errorf("unauthenticated from 127.0.0.2: %d %s", resp.StatusCode, body)
	}
	rec := tv.mustFindAudit("the firewall's refusal", func(r audit.Record) bool {
		return r.CallerAddress == "127.0.0.2" && r.Status == http.StatusForbidden
	})
	if rec.Operation != "SecretGet" || rec.ObjectName != "s" || rec.CallerObjectID != "" ||
		!strings.Contains(rec.Reason, "Client address: 127.0.0.2") {
		t.Errorf("audit record of the firewall's refusal: %+v", rec)
	}

	// A CIDR range.
	tv.setNetworkACLs("Deny", "None", "127.0.0.0/30")
	for addr, allowed := range map[string]bool{"127.0.0.1": true, "127.0.0.2": true, "127.0.0.3": true, "127.0.0.5": false} {
		_, err := tv.secretsFrom(addr, tv.srv.URL()).GetSecret(ctx, "s", "", nil)
		switch {
		case allowed && err != nil:
			t.Errorf("from %s inside 127.0.0.0/30: %v", addr, err)
		case !allowed:
			firewallDenial(t, err, addr)
		}
	}
}

func TestNetworkRulesDefaultAllow(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	if _, err := tv.secrets.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	// With default Allow the rules do not restrict anyone.
	tv.setNetworkACLs("Allow", "None", "127.0.0.1")
	for _, addr := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.9"} {
		if _, err := tv.secretsFrom(addr, tv.srv.URL()).GetSecret(ctx, "s", "", nil); err != nil {
			t.Errorf("from %s with default Allow: %v", addr, err)
		}
	}
	// Back to Deny, and the same callers are sorted again.
	tv.setNetworkACLs("Deny", "None", "127.0.0.1")
	_, err := tv.secretsFrom("127.0.0.9", tv.srv.URL()).GetSecret(ctx, "s", "", nil)
	firewallDenial(t, err, "127.0.0.9")
}

// TestNetworkRulesBypass: with bypass AzureServices, a denied address gets
// the bearer challenge, and then only keygate's own services through.
func TestNetworkRulesBypass(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	if _, err := tv.secrets.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	svc, secret, err := tv.srv.Authority().CreateServicePrincipal(ctx, "gateway service", []string{authz.RoleService})
	if err != nil {
		t.Fatal(err)
	}
	tv.setPolicy("add", svc.ObjectID, "get")
	tv.setNetworkACLs("Deny", "AzureServices", "127.0.0.1")

	resp, _ := tv.doFrom("127.0.0.2", "GET", "/secrets/s?api-version=7.5", "")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("unauthenticated from 127.0.0.2 with the bypass: %d, want the challenge", resp.StatusCode)
	}
	_, err = tv.secretsFrom("127.0.0.2", tv.srv.URL()).GetSecret(ctx, "s", "", nil)
	firewallDenial(t, err, "127.0.0.2")
	if !strings.Contains(err.Error(), "oid="+tv.adminObjectID()) {
		t.Errorf("denial after authentication does not name the caller: %v", err)
	}

	c := tv.creds
	c.ClientID, c.ClientSecret = svc.ClientID, secret
	cred, err := c.Credential(tv.http)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := azsecrets.NewClient(tv.srv.URL(), cred, &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: tv.dialFrom("127.0.0.2")},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := sc.GetSecret(ctx, "s", "", nil); err != nil || *got.Value != "v" {
		t.Errorf("keygate service from 127.0.0.2 through the bypass: %v", err)
	}
}

// TestNetworkRulesIPv6 serves a vault on ::1 and sorts IPv6 callers.
func TestNetworkRulesIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("IPv6 loopback is not available here (%v); the IPv6 rules are covered by authz's tests", err)
	}
	ln.Close()
	tv := startVault(t, "", func(c *server.Config) { c.Listen = "[::1]:0" })
	ctx := ctxT(t)
	if _, err := tv.secrets.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	url := tv.srv.URL()
	if !strings.Contains(url, "[::1]") {
		t.Fatalf("vault URL %s is not on ::1", url)
	}
	tv.setNetworkACLs("Deny", "None", "::1")
	if _, err := tv.secretsFrom("::1", url).GetSecret(ctx, "s", "", nil); err != nil {
		t.Errorf("from ::1 allowed by ::1: %v", err)
	}
	tv.setNetworkACLs("Deny", "None", "2001:db8::/32", "127.0.0.1")
	_, err = tv.secretsFrom("::1", url).GetSecret(ctx, "s", "", nil)
	firewallDenial(t, err, "::1")
	tv.setNetworkACLs("Deny", "None", "::/0")
	if _, err := tv.secretsFrom("::1", url).GetSecret(ctx, "s", "", nil); err != nil {
		t.Errorf("from ::1 allowed by ::/0: %v", err)
	}
}

// doFrom sends a raw request to the vault from the local address ip.
func (tv *testVault) doFrom(ip, method, path, token string) (*http.Response, string) {
	tv.t.Helper()
	saved := tv.http
	tv.http = tv.dialFrom(ip)
	defer func() { tv.http = saved }()
	return tv.do(method, path, token, "")
}

// adminObjectID is the administrator's object id.
func (tv *testVault) adminObjectID() string {
	tv.t.Helper()
	sp, err := tv.srv.Authority().ServicePrincipal(context.Background(), tv.creds.ClientID)
	if err != nil {
		tv.t.Fatal(err)
	}
	return sp.ObjectID
}
