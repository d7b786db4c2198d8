package gateway_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/vaulttest"
)

const siteHost = "site.example.test"

// TestRotateByImport imports a new version of a certificate under load:
// with push (polling every 4 hours, so only the push can rotate) and with
// polling every second and no event stream. New handshakes get the new
// serial; no request fails; kept-alive connections keep the old
// certificate; the rotation is logged, counted and shown in status.
func TestRotateByImport(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{})
	tests := []struct {
		name  string
		extra string
		opts  gateway.Options
	}{
		{"push", "", gateway.Options{}},
		{"polling", "keyVaultPollInterval: 1s", gateway.Options{NoEvents: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			secret := "site-" + tc.name
			old := e.ca.Issue(t, gwtest.ECDSA, siteHost)
			oldVersion := e.importCert(secret, old)
			gw := startGatewayWith(t, e.doc(siteHost, "/secrets/"+secret, tc.extra), tc.opts)
			waitServed(t, gw, siteHost, old.Serial())
			if tc.name == "push" {
				eventually(t, "the event stream to open", func() bool {
					vs := gw.Status().Vaults
					return len(vs) == 1 && vs[0].Events.Connected
				})
			}
			l := startLoad(t, gw.Addr("site"), siteHost, 4, 2)
			next := e.ca.Issue(t, gwtest.ECDSA, siteHost)
			newVersion := e.importCert(secret, next)

			// Polls are a second apart: the first that starts after the
			// import installs the version (one in flight across the
			// import may miss it).
			imported := certStatus(gw).LastAttempt
			polls := map[time.Time]bool{}
			eventually(t, "the new version to be installed", func() bool {
				st := certStatus(gw)
				if st.LastAttempt.After(imported) {
					polls[st.LastAttempt] = true
				}
				return st.Version == newVersion
			})
			if tc.name == "polling" && len(polls) > 2 {
				t.Errorf("%d polls after the import before the version was installed, want at most 2", len(polls))
			}
			waitServed(t, gw, siteHost, next.Serial())
			l.check(t, old.Serial(), next.Serial())

			st := certStatus(gw)
			if st.Version != newVersion || st.Serial != next.Serial() || st.Condition != certs.OK || !st.Serving {
				t.Errorf("status after the rotation: %+v", st)
			}
			if n := countLogs(gw, "certificate rotated", map[string]any{"certificate": "site",
				"from_version": oldVersion, "to_version": newVersion, "from_serial": old.Serial(),
				"to_serial": next.Serial(), "listeners": "[site]"}); n != 1 {
				t.Errorf("%d 'certificate rotated' log lines naming both versions and serials, want 1:\n%s", n, gw.logs.String())
			}
			m := scrape(t, gw.AdminAddr())
			for _, want := range []string{
				`keygate_certificate_rotations_total{certificate="site",gateway="rotation",listener="site"} 1`,
				`keygate_certificate_condition{certificate="site",condition="OK",gateway="rotation",listener="site"} 1`,
				`keygate_certificate_serving{certificate="site",gateway="rotation",listener="site"} 1`,
				`keygate_certificate_expiry_timestamp_seconds{certificate="site",gateway="rotation",listener="site"} ` + promTime(next.Cert.NotAfter),
				`keygate_certificate_last_refresh_timestamp_seconds{certificate="site",gateway="rotation",listener="site"} `,
			} {
				if !strings.Contains(m, want) {
					t.Errorf("metrics lack %s\n%s", want, grepLines(m, "keygate_certificate"))
				}
			}
		})
	}
}

// TestRotateByRenewal lets the vault renew a certificate by its policy,
// with the vault's clock driven to where AutoRenew falls due, and checks
// the gateway moves to the renewed version under load, by push and by
// polling.
func TestRotateByRenewal(t *testing.T) {
	clock := vaulttest.NewClock()
	// Tokens outlive the months the clock moves by.
	e := newRotationEnv(t, vaulttest.Options{Clock: clock, TokenLifetime: 5 * 365 * 24 * time.Hour})
	for _, mode := range []string{"push", "polling"} {
		t.Run(mode, func(t *testing.T) {
			name := "renew-" + mode
			host := name + ".example.test"
			createByPolicy(t, e.v, name, host)
			opts := gateway.Options{Now: clock.Now}
			extra := ""
			if mode == "polling" {
				opts.NoEvents, extra = true, "keyVaultPollInterval: 1s"
			}
			gw := startGatewayWith(t, e.doc(host, "/secrets/"+name, extra), opts)
			eventually(t, "the certificate to load", gw.Ready)
			before := certStatus(gw)

			l := startLoad(t, gw.Addr("site"), host, 3, 2)
			clock.Advance(340 * 24 * time.Hour) // 30 days before a 12-month certificate expires
			e.v.RunCertificateJobs()
			eventually(t, "the renewed version to be served", func() bool {
				st := certStatus(gw)
				got, err := servedSerial(gw.Addr("site"), host)
				return st.Version != before.Version && err == nil && got == st.Serial
			})
			after := certStatus(gw)
			l.check(t, before.Serial, after.Serial)
			if !after.NotAfter.After(before.NotAfter) || after.Condition != certs.OK {
				t.Errorf("renewed: %+v, before %+v", after, before)
			}
		})
	}
}

// createByPolicy has the vault create a self-signed certificate for host
// with a policy that renews it 30 days before it expires.
func createByPolicy(t *testing.T, v *vaulttest.Vault, name, host string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pol := &azcertificates.CertificatePolicy{
		IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("Self")},
		KeyProperties: &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeEC),
			Curve: to.Ptr(azcertificates.CurveNameP256), Exportable: to.Ptr(true)},
		SecretProperties: &azcertificates.SecretProperties{ContentType: to.Ptr("application/x-pkcs12")},
		X509CertificateProperties: &azcertificates.X509CertificateProperties{
			Subject:                 to.Ptr("CN=" + host),
			SubjectAlternativeNames: &azcertificates.SubjectAlternativeNames{DNSNames: []*string{to.Ptr(host)}},
			ValidityInMonths:        to.Ptr(int32(12)),
		},
		LifetimeActions: []*azcertificates.LifetimeAction{{
			Action:  &azcertificates.LifetimeActionType{ActionType: to.Ptr(azcertificates.CertificatePolicyActionAutoRenew)},
			Trigger: &azcertificates.LifetimeActionTrigger{DaysBeforeExpiry: to.Ptr(int32(30))},
		}},
	}
	if _, err := v.Certificates.CreateCertificate(ctx, name, azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
		t.Fatal(err)
	}
	for {
		op, err := v.Certificates.GetCertificateOperation(ctx, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if op.Status == nil || *op.Status != "inProgress" {
			if *op.Status != "completed" {
				t.Fatalf("creating %s: %s", name, *op.Status)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVersionedReferenceStays pins a version: a newer one, pushed and
// refreshed by hand, is not taken.
func TestVersionedReferenceStays(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{})
	pinned := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	version := e.importCert("site", pinned)
	gw := startGatewayWith(t, e.doc(siteHost, "/secrets/site/"+version, ""), gateway.Options{})
	waitServed(t, gw, siteHost, pinned.Serial())

	e.importCert("site", e.ca.Issue(t, gwtest.ECDSA, siteHost))
	status, res := adminPost(t, gw, "/refresh?certificate=site")
	if status != http.StatusOK || len(res.Results) != 1 || res.Results[0].Changed || res.Results[0].Version != version {
		t.Fatalf("refresh of a versioned reference: %d %+v", status, res)
	}
	if got, err := servedSerial(gw.Addr("site"), siteHost); err != nil || got != pinned.Serial() {
		t.Errorf("served %s, %v; want the pinned serial %s", got, err, pinned.Serial())
	}
	if st := certStatus(gw); st.Version != version || st.Condition != certs.OK {
		t.Errorf("status: %+v", st)
	}
}

// TestTwoGatewaysRotateOnOnePush runs two gateways on one configuration:
// each follows the vault's events, and one import rotates both.
func TestTwoGatewaysRotateOnOnePush(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{})
	old := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	e.importCert("site", old)
	var gws []*testGateway
	for range 2 {
		gw := startGatewayWith(t, e.doc(siteHost, "/secrets/site", ""), gateway.Options{})
		waitServed(t, gw, siteHost, old.Serial())
		eventually(t, "the event stream to open", func() bool {
			vs := gw.Status().Vaults
			return len(vs) == 1 && vs[0].Events.Connected
		})
		gws = append(gws, gw)
	}
	next := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	e.importCert("site", next)
	for _, gw := range gws {
		waitServed(t, gw, siteHost, next.Serial())
	}
}

// TestManualRefresh rotates through POST /refresh with neither push nor a
// due poll, and refuses unknown names and other methods.
func TestManualRefresh(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{})
	old := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	e.importCert("site", old)
	gw := startGatewayWith(t, e.doc(siteHost, "/secrets/site", ""), gateway.Options{NoEvents: true})
	waitServed(t, gw, siteHost, old.Serial())

	next := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	version := e.importCert("site", next)
	if got, _ := servedSerial(gw.Addr("site"), siteHost); got != old.Serial() {
		t.Fatalf("rotated before any refresh: %s", got)
	}
	status, res := adminPost(t, gw, "/refresh")
	if status != http.StatusOK || len(res.Results) != 1 {
		t.Fatalf("refresh: %d %+v", status, res)
	}
	r := res.Results[0]
	if !r.Changed || r.Version != version || r.Serial != next.Serial() || r.Condition != certs.OK || !r.Serving ||
		r.Certificate != "site" || len(r.Listeners) != 1 {
		t.Errorf("refresh result: %+v", r)
	}
	if got, _ := servedSerial(gw.Addr("site"), siteHost); got != next.Serial() {
		t.Errorf("served %s after the refresh, want %s", got, next.Serial())
	}

	if status, _ := adminPost(t, gw, "/refresh?certificate=nope"); status != http.StatusNotFound {
		t.Errorf("refresh of an unknown certificate: %d, want 404", status)
	}
	resp, err := http.Get("http://" + gw.AdminAddr() + "/refresh")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /refresh: %d, want 405", resp.StatusCode)
	}
}

// promTime is t in Unix seconds as Prometheus's text format writes it.
func promTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.Unix()), 'g', -1, 64)
}
