package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/server"
)

// TestLogsHoldNoSecrets drives successes, denials and failures, then
// searches everything the server logged (at debug level) for the values,
// client secrets and tokens involved.
func TestLogsHoldNoSecrets(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	values := []string{"log-probe-value-1", "log-probe-value-2"}
	for _, v := range values {
		if _, err := tv.secrets.SetSecret(ctx, "probe", azsecrets.SetSecretParameters{Value: to.Ptr(v)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	sp, secret, err := tv.srv.Authority().CreateServicePrincipal(ctx, "nobody", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tv.clientFor(sp.ClientID, secret).GetSecret(ctx, "probe", "", nil); statusOf(err) != http.StatusForbidden {
		t.Fatalf("unexpected: %v", err)
	}
	if _, err := tv.clientFor(sp.ClientID, "wrong-"+secret).GetSecret(ctx, "probe", "", nil); err == nil {
		t.Fatal("wrong client secret accepted")
	}
	token := tv.adminToken()
	tv.do("PUT", "/secrets/bad_name?api-version=7.5", token, `{"value":"`+values[0]+`"}`)
	tv.do("GET", "/secrets?api-version=7.5", token+"x", "")

	logs := tv.logs.String()
	if !strings.Contains(logs, "request denied") {
		t.Fatalf("the denial was not logged; logs:\n%s", logs)
	}
	for _, s := range append(values, secret, tv.creds.ClientSecret, token) {
		if strings.Contains(logs, s) {
			t.Errorf("logs hold secret material (%d characters)", len(s))
		}
	}
}

// TestPurgeAfterRetention advances the clock past the retention period and
// waits for the purger to remove the deleted secret.
func TestPurgeAfterRetention(t *testing.T) {
	tv := startVault(t, "", func(c *server.Config) { c.PurgeInterval = 20 * time.Millisecond })
	ctx := ctxT(t)
	for _, name := range []string{"old", "young"} {
		if _, err := tv.secrets.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tv.secrets.DeleteSecret(ctx, "old", nil); err != nil {
		t.Fatal(err)
	}
	tv.clock.Advance(89 * 24 * time.Hour)
	tv.connect() // a fresh token: the one held was issued 89 days ago
	if _, err := tv.secrets.DeleteSecret(ctx, "young", nil); err != nil {
		t.Fatal(err)
	}
	tv.clock.Advance(24*time.Hour + time.Second)
	tv.connect()
	waitFor(t, func() bool {
		_, err := tv.secrets.GetDeletedSecret(ctx, "old", nil)
		return statusOf(err) == http.StatusNotFound
	})
	if _, err := tv.secrets.GetDeletedSecret(ctx, "young", nil); err != nil {
		t.Errorf("secret deleted a day ago was purged too: %v", err)
	}
}
