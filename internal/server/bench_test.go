package server_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/server"
)

// BenchmarkGetSecret reads one secret over HTTPS keep-alive connections
// with a real token, client and server in one process: a profile of the
// read path (go test -bench GetSecret -cpuprofile). bench/vault.sh measures
// the server alone.
//
// The sub-benchmarks add, one at a time, what this issue put on the path:
// an audit log (written to io.Discard, so the encoding is measured, not a
// disk) and network rules that the caller passes.
func BenchmarkGetSecret(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		benchGetSecret(b, startVault(b, "", func(c *server.Config) { c.Audit = nil }))
	})
	b.Run("metrics", func(b *testing.B) {
		benchGetSecret(b, startVault(b, "", func(c *server.Config) { c.Audit = nil; c.OpsListen = "127.0.0.1:0" }))
	})
	b.Run("audited", func(b *testing.B) {
		benchGetSecret(b, startVault(b, "", func(c *server.Config) { c.Audit = audit.NewWriter(io.Discard, nil) }))
	})
	b.Run("audited+firewall", func(b *testing.B) {
		tv := startVault(b, "", func(c *server.Config) { c.Audit = audit.NewWriter(io.Discard, nil) })
		rules := []any{}
		for i := range 50 {
			rules = append(rules, map[string]any{"value": fmt.Sprintf("10.%d.0.0/16", i)})
		}
		rules = append(rules, map[string]any{"value": "127.0.0.1"})
		tv.mustManage(http.StatusOK, "PATCH", "/vaults/default", map[string]any{"properties": map[string]any{
			"networkAcls": map[string]any{"defaultAction": "Deny", "bypass": "None", "ipRules": rules},
		}})
		benchGetSecret(b, tv)
	})
}

func benchGetSecret(b *testing.B, tv *testVault) {
	if _, err := tv.secrets.SetSecret(ctxT(b), "bench", azsecrets.SetSecretParameters{Value: to.Ptr("value")}, nil); err != nil {
		b.Fatal(err)
	}
	token := tv.adminToken()
	url := tv.srv.URL() + "/secrets/bench/?api-version=7.5"
	b.RunParallel(func(pb *testing.PB) {
		hc := &http.Client{Transport: tv.http.Transport.(*http.Transport).Clone()}
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}
