package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/vaulttest"
)

// fastRetry is the gateway's retry cap in these tests: failed reads are
// retried within half a second.
var fastRetry = gateway.Options{MaxRetry: 500 * time.Millisecond}

// TestVaultDownKeepsServing stops the vault under a serving gateway: the
// listener keeps its certificate, the condition is reported once however
// many retries fail, and refresh resumes when the vault returns.
func TestVaultDownKeepsServing(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{})
	old := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	e.importCert("site", old)
	gw := startGatewayWith(t, e.doc(siteHost, "/secrets/site", "keyVaultPollInterval: 1s"), fastRetry)
	waitServed(t, gw, siteHost, old.Serial())

	e.v.Stop()
	first := waitCondition(t, gw, certs.KeyVaultUnreachable)
	eventually(t, "several failed retries", func() bool { return certStatus(gw).LastAttempt.After(first.LastAttempt.Add(time.Second)) })
	st := certStatus(gw)
	if !st.Serving || st.Serial != old.Serial() || st.LastRefresh.After(first.LastAttempt) {
		t.Errorf("status with the vault down: %+v", st)
	}
	if got, err := servedSerial(gw.Addr("site"), siteHost); err != nil || got != old.Serial() {
		t.Errorf("with the vault down: served %s, %v; want the last good %s", got, err, old.Serial())
	}
	if !gw.Ready() {
		t.Error("not ready while serving the last good certificate")
	}
	if n := countLogs(gw, "certificate not refreshed; serving the last good version",
		map[string]any{"condition": "KeyVaultUnreachable", "certificate": "site"}); n != 1 {
		t.Errorf("the condition was logged %d times, want once:\n%s", n, gw.logs.String())
	}
	m := scrape(t, gw.AdminAddr())
	if want := `keygate_certificate_condition{certificate="site",condition="KeyVaultUnreachable",gateway="rotation",listener="site"} 1`; !strings.Contains(m, want) {
		t.Errorf("metrics lack %s\n%s", want, grepLines(m, "keygate_certificate_condition"))
	}

	// Back: the condition clears, and a new version reaches the listener.
	e.v.Restart()
	waitCondition(t, gw, certs.OK)
	if n := countLogs(gw, "certificate condition cleared", map[string]any{"was": "KeyVaultUnreachable"}); n != 1 {
		t.Errorf("%d 'condition cleared' lines, want 1", n)
	}
	next := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	e.importCert("site", next)
	waitServed(t, gw, siteHost, next.Serial())
}

// refusal is a way the vault refuses the gateway's certificate, and how to
// undo it.
type refusal struct {
	name     string
	code     certs.Code
	do, undo func(e *rotationEnv)
}

func refusals() []refusal {
	return []refusal{
		{name: "get revoked", code: certs.UserAssignedIdentityDoesNotHaveGetPermissionOnKeyVault,
			do: func(e *rotationEnv) { e.v.SetAccess("default", "remove", e.id.PrincipalID, nil) },
			undo: func(e *rotationEnv) {
				e.v.SetAccess("default", "add", e.id.PrincipalID, map[string][]string{"secrets": {"get"}})
			}},
		{name: "secret disabled", code: certs.SecretDisabled,
			do:   func(e *rotationEnv) { setLatestEnabled(e, false) },
			undo: func(e *rotationEnv) { setLatestEnabled(e, true) }},
		{name: "secret deleted", code: certs.SecretDeletedFromKeyVault,
			do: func(e *rotationEnv) {
				if _, err := e.v.Certificates.DeleteCertificate(context.Background(), "site", nil); err != nil {
					e.t.Fatal(err)
				}
			},
			undo: func(e *rotationEnv) {
				if _, err := e.v.Certificates.RecoverDeletedCertificate(context.Background(), "site", nil); err != nil {
					e.t.Fatal(err)
				}
			}},
	}
}

// setLatestEnabled enables or disables the certificate site's newest
// version, and with it its secret.
func setLatestEnabled(e *rotationEnv, enabled bool) {
	e.t.Helper()
	if _, err := e.v.Certificates.UpdateCertificate(context.Background(), "site", "", azcertificates.UpdateCertificateParameters{
		CertificateAttributes: &azcertificates.CertificateAttributes{Enabled: to.Ptr(enabled)}}, nil); err != nil {
		e.t.Fatal(err)
	}
}

// TestRefusalsKeepLastGood revokes get, disables the secret and deletes
// it: under the default policy the listener keeps serving its last good
// certificate and reports each condition, and clears it when undone.
func TestRefusalsKeepLastGood(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{})
	old := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	e.importCert("site", old)
	gw := startGatewayWith(t, e.doc(siteHost, "/secrets/site", "keyVaultPollInterval: 2s"), fastRetry)
	waitServed(t, gw, siteHost, old.Serial())

	for _, r := range refusals() {
		r.do(e)
		st := waitCondition(t, gw, r.code)
		if !st.Serving || st.Serial != old.Serial() {
			t.Errorf("%s: status %+v, want the last good certificate served", r.name, st)
		}
		if got, err := servedSerial(gw.Addr("site"), siteHost); err != nil || got != old.Serial() {
			t.Errorf("%s: served %s, %v", r.name, got, err)
		}
		if n := countLogs(gw, "certificate not refreshed; serving the last good version",
			map[string]any{"condition": string(r.code)}); n != 1 {
			t.Errorf("%s: condition logged %d times, want once", r.name, n)
		}
		r.undo(e)
		waitCondition(t, gw, certs.OK)
	}
}

// TestRefusalsDisableListener is the same under onKeyVaultError:
// DisableListener: each refusal stops the certificate being served
// (handshakes fail, readiness says why) until it reads again.
func TestRefusalsDisableListener(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{})
	old := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	e.importCert("site", old)
	gw := startGatewayWith(t, e.doc(siteHost, "/secrets/site", "keyVaultPollInterval: 2s\nonKeyVaultError: DisableListener"), fastRetry)
	waitServed(t, gw, siteHost, old.Serial())

	for _, r := range refusals() {
		r.do(e)
		eventually(t, r.name+": handshakes to fail", func() bool {
			_, err := servedSerial(gw.Addr("site"), siteHost)
			return err != nil
		})
		st := certStatus(gw)
		if st.Condition != r.code || st.Serving || !st.Ready {
			t.Errorf("%s: status %+v, want %s, held", r.name, st, r.code)
		}
		code, body := readyz(t, gw)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "is not served (onKeyVaultError: DisableListener)") ||
			!strings.Contains(body, string(r.code)) {
			t.Errorf("%s: /readyz %d %s", r.name, code, body)
		}
		if n := countLogs(gw, "certificate no longer served (onKeyVaultError: DisableListener)",
			map[string]any{"condition": string(r.code)}); n != 1 {
			t.Errorf("%s: %d log lines of the listener stopping, want 1", r.name, n)
		}
		m := scrape(t, gw.AdminAddr())
		if want := `keygate_certificate_serving{certificate="site",gateway="rotation",listener="site"} 0`; !strings.Contains(m, want) {
			t.Errorf("%s: metrics lack %s", r.name, want)
		}

		r.undo(e)
		waitServed(t, gw, siteHost, old.Serial())
		if st := certStatus(gw); st.Condition != certs.OK || !st.Serving {
			t.Errorf("%s undone: status %+v", r.name, st)
		}
	}
}

func readyz(t *testing.T, gw *testGateway) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + gw.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestUnusableVersionsNotInstalled stores new versions a listener cannot
// serve (a plain secret, since the vault refuses to import some of them as
// certificates): for another host name, expired, not yet valid, without a
// key. None is installed; the old one serves and the condition says why;
// a good version after them is installed.
func TestUnusableVersionsNotInstalled(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{})
	store := func(l *gwtest.Leaf) { e.v.SetSecret("site", l.PFX(t, ""), certs.ContentTypePKCS12) }
	old := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	store(old)
	gw := startGatewayWith(t, e.doc(siteHost, "/secrets/site", ""), gateway.Options{})
	waitServed(t, gw, siteHost, old.Serial())

	now := time.Now()
	tests := []struct {
		name  string
		store func()
		code  certs.Code
	}{
		{"another host name", func() { store(e.ca.Issue(t, gwtest.ECDSA, "other.example.test")) },
			certs.CertificateHostNameMismatch},
		{"expired", func() { store(e.ca.IssueValid(t, gwtest.ECDSA, now.Add(-48*time.Hour), now.Add(-time.Hour), siteHost)) },
			certs.CertificateExpired},
		{"not yet valid", func() { store(e.ca.IssueValid(t, gwtest.ECDSA, now.Add(time.Hour), now.Add(48*time.Hour), siteHost)) },
			certs.CertificateNotYetValid},
		{"no key", func() {
			e.v.SetSecret("site", e.ca.Issue(t, gwtest.ECDSA, siteHost).CertOnlyPEM(), certs.ContentTypePEM)
		}, certs.CertificateUnusable},
	}
	for _, tc := range tests {
		tc.store()
		st := waitCondition(t, gw, tc.code)
		if st.Serial != old.Serial() || !st.Serving {
			t.Errorf("%s: status %+v, want the old certificate in use", tc.name, st)
		}
		if got, err := servedSerial(gw.Addr("site"), siteHost); err != nil || got != old.Serial() {
			t.Errorf("%s: served %s, %v", tc.name, got, err)
		}
	}
	good := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	store(good)
	waitServed(t, gw, siteHost, good.Serial())
	waitCondition(t, gw, certs.OK)
}

// TestIdentityNotFound starts a gateway whose identity is not assigned to
// its host: the agent refuses it, and status says so with Application
// Gateway's code.
func TestIdentityNotFound(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{})
	e.importCert("site", e.ca.Issue(t, gwtest.ECDSA, siteHost))
	stranger, _ := e.v.CreateIdentity("stranger")
	doc := strings.Replace(e.doc(siteHost, "/secrets/site", ""), e.id.ClientID, stranger, 1)
	gw := startGatewayWith(t, doc, fastRetry)
	st := waitCondition(t, gw, certs.UserAssignedManagedIdentityNotFound)
	if st.Ready || !strings.Contains(st.LastError, "nothing to serve until it reads") {
		t.Errorf("status: %+v", st)
	}
}

// TestStatusAndLogsHoldNoSecrets reads status, metrics and logs after
// rotations and failures, and finds no key material, no agent header and
// no secret value in them.
func TestStatusAndLogsHoldNoSecrets(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{})
	leaf := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	value := leaf.PEM(t)
	e.v.SetSecret("site", value, certs.ContentTypePEM)
	gw := startGatewayWith(t, e.doc(siteHost, "/secrets/site", ""), fastRetry)
	waitServed(t, gw, siteHost, leaf.Serial())
	e.v.SetSecret("site", leaf.CertOnlyPEM(), certs.ContentTypePEM)
	waitCondition(t, gw, certs.CertificateUnusable)
	adminPost(t, gw, "/refresh")

	resp, err := http.Get("http://" + gw.AdminAddr() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	status, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var doc gateway.Status
	if err := json.Unmarshal(status, &doc); err != nil || len(doc.Listeners) != 1 || doc.Listeners[0].CertificateStatus == nil {
		t.Fatalf("status: %v\n%s", err, status)
	}
	if ls := doc.Listeners[0].CertificateStatus; ls.Version == "" || ls.NotAfter.IsZero() || ls.LastRefresh.IsZero() ||
		ls.LastAttempt.IsZero() || ls.Condition != certs.CertificateUnusable {
		t.Errorf("the listener's certificate in status: %+v", ls)
	}
	all := string(status) + scrape(t, gw.AdminAddr()) + gw.logs.String()
	keyBody := strings.Split(value, "\n")[1] // a line of the key's base64
	for _, probe := range []string{"PRIVATE KEY", keyBody, e.id.Agent.Header(), e.v.Admin.ClientSecret} {
		if strings.Contains(all, probe) {
			t.Errorf("status, metrics or logs hold secret material (%.8q...)", probe)
		}
	}
}

// TestVaultDeleted deletes the vault a DisableListener gateway reads from
// (a vault of its own, at team.localhost, reached as a hosts-file entry
// would): the vault refuses the event stream and the read with 404
// VaultNotFound, and the listener stops serving, with
// KeyVaultSoftDeleted.
func TestVaultDeleted(t *testing.T) {
	v := vaulttest.Start(t, nil)
	teamURL := v.CreateVault("team")
	ca := gwtest.NewCA(t, "CA")
	leaf := ca.Issue(t, gwtest.ECDSA, siteHost)
	hc := v.LoopbackClient()
	cred, err := v.Admin.Credential(hc)
	if err != nil {
		t.Fatal(err)
	}
	team, err := azsecrets.NewClient(teamURL, cred, &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: hc}, DisableChallengeResourceVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := team.SetSecret(context.Background(), "site", azsecrets.SetSecretParameters{
		Value: to.Ptr(leaf.PFX(t, "")), ContentType: to.Ptr(certs.ContentTypePKCS12)}, nil); err != nil {
		t.Fatal(err)
	}
	pool := gwtest.StartPool(t, "app", 1, nil)
	doc := vaultSection(v) + yamlf(`
name: deleted
onKeyVaultError: DisableListener
admin: {address: "127.0.0.1:0"}
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: https, port: %d}]
sslCertificates: [{name: site, keyVaultSecretId: "%s/secrets/site"}]
httpListeners: [{name: site, frontendPort: https, protocol: Https, hostName: %s, sslCertificate: site}]
backendAddressPools: [{name: app, backendAddresses: [{ipAddress: %s}]}]
backendHttpSettingsCollection: [{name: app, port: %d, protocol: Http}]
requestRoutingRules: [{name: site, ruleType: Basic, httpListener: site, backendAddressPool: app, backendHttpSettings: app}]
`, gwtest.FreePort(t, "127.0.0.1"), teamURL, siteHost, pool[0].IP, pool[0].Port)
	gw := startGatewayWith(t, doc, gateway.Options{VaultHTTPClient: hc, MaxRetry: 500 * time.Millisecond})
	waitServed(t, gw, siteHost, leaf.Serial())
	eventually(t, "the event stream to open", func() bool {
		vs := gw.Status().Vaults
		return len(vs) == 1 && vs[0].Events.Connected
	})

	v.DeleteVault("team")
	eventually(t, "handshakes to fail", func() bool {
		_, err := servedSerial(gw.Addr("site"), siteHost)
		return err != nil
	})
	if st := certStatus(gw); st.Condition != certs.KeyVaultSoftDeleted || st.Serving {
		t.Errorf("status: %+v", st)
	}
	if vs := gw.Status().Vaults; len(vs) != 1 || vs[0].Events.Connected || !strings.Contains(vs[0].Events.LastError, "VaultNotFound") {
		t.Errorf("event stream of a deleted vault: %+v", vs)
	}
}
