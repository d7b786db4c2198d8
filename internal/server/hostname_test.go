package server_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/server"
)

// TestHostnameKeepsChallengeVerification serves the vault under a DNS name
// and uses the SDK with challenge resource verification left on: the
// challenge's resource must be a parent domain of the vault's host.
func TestHostnameKeepsChallengeVerification(t *testing.T) {
	const host = "kv.vault.keygate.test"
	tv := startVault(t, "", func(c *server.Config) { c.Hostname = host })
	if got, want := tv.srv.Resource(), "https://vault.keygate.test:"; !strings.HasPrefix(got, want) {
		t.Fatalf("resource = %q, want prefix %q", got, want)
	}

	// No resolver here knows keygate.test: dial every name to the server's
	// loopback address, as a hosts file entry would.
	addr := strings.TrimPrefix(tv.srv.URL(), "https://")
	addr = "127.0.0.1" + addr[strings.LastIndex(addr, ":"):]
	tr := tv.http.Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	hc := &http.Client{Transport: tr}

	cred, err := tv.creds.Credential(hc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azsecrets.NewClient(tv.srv.URL(), cred, &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: hc},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if _, err := c.SetSecret(ctx, "named", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatalf("SetSecret with verification on: %v", err)
	}
	got, err := c.GetSecret(ctx, "named", "", nil)
	if err != nil || *got.Value != "v" {
		t.Fatalf("GetSecret: %v", err)
	}
	if !strings.HasPrefix(string(*got.ID), "https://"+host+":") {
		t.Errorf("id %s is not under the host name", *got.ID)
	}
}
