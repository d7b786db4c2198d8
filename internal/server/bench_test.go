package server_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// BenchmarkGetSecret reads one secret over HTTPS keep-alive connections
// with a real token, client and server in one process: a profile of the
// read path (go test -bench GetSecret -cpuprofile). bench/vault.sh measures
// the server alone.
func BenchmarkGetSecret(b *testing.B) {
	tv := startVault(b, "")
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
