package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/server"
)

// ops GETs path from the vault's operations listener.
func (tv *testVault) ops(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + tv.srv.OpsAddr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOpsListener scrapes the vault's metrics after SDK requests and
// finds each counted by source, operation and status, with latencies;
// names of objects and secret values appear nowhere; the health checks
// answer.
func TestOpsListener(t *testing.T) {
	tv := startVault(t, "", func(c *server.Config) { c.OpsListen = "127.0.0.1:0" })
	const value = "metrics-secret-value-3c1f"
	if _, err := tv.secrets.SetSecret(ctxT(t), "metrics-named-secret", azsecrets.SetSecretParameters{Value: to.Ptr(value)}, nil); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := tv.secrets.GetSecret(ctxT(t), "metrics-named-secret", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tv.secrets.GetSecret(ctxT(t), "metrics-absent", "", nil); statusOf(err) != http.StatusNotFound {
		t.Fatalf("GetSecret of a missing secret: %v", err)
	}

	st, body := tv.ops(t, "/metrics")
	if st != http.StatusOK {
		t.Fatalf("/metrics: %d", st)
	}
	for _, want := range []string{
		`keygate_vault_requests_total{code="200",operation="SecretSet",source="vault"} 1`,
		`keygate_vault_requests_total{code="200",operation="SecretGet",source="vault"} 3`,
		`keygate_vault_requests_total{code="404",operation="SecretGet",source="vault"} 1`,
		// The SDK's first request of each client is the challenge's 401.
		`keygate_vault_requests_total{code="401",operation="SecretSet",source="vault"} 1`,
		`keygate_vault_request_duration_seconds_count{operation="SecretGet",source="vault"} 4`,
		`keygate_vault_requests_total{code="200",operation="ClientCredentialsToken",source="authority"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, leak := range []string{value, "metrics-named-secret", "metrics-absent"} {
		if strings.Contains(body, leak) {
			t.Errorf("/metrics holds %q", leak)
		}
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		if st, _ := tv.ops(t, path); st != http.StatusOK {
			t.Errorf("%s: %d, want 200", path, st)
		}
	}
}
