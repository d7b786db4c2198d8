package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"

	"github.com/keygate/keygate/internal/pki"
	"github.com/keygate/keygate/internal/server"
)

// TestRenewalOnceAcrossReplicas runs two vault replicas on one
// PostgreSQL database and drives both schedulers at once when a renewal
// falls due: one new version is made.
func TestRenewalOnceAcrossReplicas(t *testing.T) {
	requirePostgres(t)
	first := filepath.Join(t.TempDir(), "data")
	tv1 := startVault(t, first)
	url := testStoreURL(t, first)
	key := strings.TrimSpace(string(mustReadFile(t, filepath.Join(first, "master.key"))))
	replica := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(replica, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(replica, "admin.json"), mustReadFile(t, filepath.Join(first, "admin.json")), 0o600)
	tv2 := startVault(t, replica, func(c *server.Config) { c.StoreURL, c.MasterKey = url, key })

	c := tv1.certs()
	pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, "Self", "replica.example", "application/x-pkcs12")
	pol.LifetimeActions = []*azcertificates.LifetimeAction{{
		Action:  &azcertificates.LifetimeActionType{ActionType: to.Ptr(azcertificates.CertificatePolicyActionAutoRenew)},
		Trigger: &azcertificates.LifetimeActionTrigger{LifetimePercentage: to.Ptr(int32(50))},
	}}
	if _, err := c.CreateCertificate(ctxT(t), "replicated", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
		t.Fatal(err)
	}
	waitOperation(t, c, "replicated", notInProgress)

	for _, tv := range []*testVault{tv1, tv2} {
		tv.clock.Advance(200 * 24 * time.Hour)
	}
	var wg sync.WaitGroup
	for _, tv := range []*testVault{tv1, tv2, tv1, tv2} {
		wg.Go(func() { tv.srv.RunCertificateJobs(ctxLong(t)) })
	}
	wg.Wait()
	tv2.connect()
	if v := listVersions(t, tv2.certs(), "replicated"); len(v) != 2 {
		t.Errorf("%d versions after both replicas ran their jobs, want 2", len(v))
	}
}
