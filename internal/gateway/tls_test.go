package gateway_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/vaulttest"
)

// vaultSection is the keyVault part of a configuration that reads v as
// its administrator through a ClientSecret credential.
func vaultSection(v *vaulttest.Vault) string {
	return yamlf(`
keyVault:
  trustedCaFile: %s
  credential:
    type: ClientSecret
    tenantId: %s
    clientId: %s
    authorityHost: %s
    clientSecretFile: %s
`, v.CAFile, v.Admin.TenantID, v.Admin.ClientID, v.Admin.AuthorityHost, v.WriteClientSecret())
}

// TestSNISelection serves certificates from the vault (PFX versionless,
// PEM by version) and inline, on one port, and checks the certificate
// each server name gets: exact names before wildcards, wildcards by rule
// priority, the first listener's without SNI or without a match.
func TestSNISelection(t *testing.T) {
	v := vaulttest.Start(t, nil)
	ca := gwtest.NewCA(t, "CA")
	wild := ca.Issue(t, gwtest.ECDSA, "*.example.test", "www.example.test")
	api := ca.Issue(t, gwtest.RSA, "api.example.test")
	broad := ca.Issue(t, gwtest.ECDSA, "*.test")
	legacy := ca.Issue(t, gwtest.ECDSA, "legacy.example.org")

	v.SetSecret("wild", wild.PFX(t, ""), certs.ContentTypePKCS12)
	apiVersion := v.SetSecret("api", api.PEM(t), certs.ContentTypePEM)
	// A newer version of api that a versioned reference must not pick.
	v.SetSecret("api", ca.Issue(t, gwtest.RSA, "api.example.test").PEM(t), certs.ContentTypePEM)
	v.SetSecret("broad", broad.PEM(t), "") // no content type: judged by the value

	pool := gwtest.StartPool(t, "app", 1, nil)
	port := gwtest.FreePort(t, "127.0.0.1")
	doc := vaultSection(v) + yamlf(`
name: sni
admin: {address: "127.0.0.1:0"}
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: https, port: %d}]
sslCertificates:
  - {name: wild, keyVaultSecretId: "%s/secrets/wild"}
  - {name: api, keyVaultSecretId: "%s/secrets/api/%s"}
  - {name: broad, keyVaultSecretId: "%s/secrets/broad/"}
  - {name: legacy, data: "%s", password: pw}
httpListeners:
  - {name: wild, frontendPort: https, protocol: Https, hostNames: ["*.example.test"], sslCertificate: wild}
  - {name: api, frontendPort: https, protocol: Https, hostName: api.example.test, sslCertificate: api}
  - {name: broad, frontendPort: https, protocol: Https, hostNames: ["*.test"], sslCertificate: broad}
  - {name: legacy, frontendPort: https, protocol: Https, hostName: legacy.example.org, sslCertificate: legacy}
backendAddressPools: [{name: app, backendAddresses: [{ipAddress: %s}]}]
backendHttpSettingsCollection: [{name: app, port: %d, protocol: Http}]
requestRoutingRules:
  - {name: wild, ruleType: Basic, priority: 200, httpListener: wild, backendAddressPool: app, backendHttpSettings: app}
  - {name: api, ruleType: Basic, priority: 300, httpListener: api, backendAddressPool: app, backendHttpSettings: app}
  - {name: broad, ruleType: Basic, priority: 100, httpListener: broad, backendAddressPool: app, backendHttpSettings: app}
  - {name: legacy, ruleType: Basic, priority: 400, httpListener: legacy, backendAddressPool: app, backendHttpSettings: app}
`, port, v.URL, v.URL, apiVersion, v.URL, legacy.PFX(t, "pw"), pool[0].IP, pool[0].Port)
	gw := startGateway(t, doc)
	eventually(t, "vault certificates to load", gw.Ready)
	addr := gw.Addr("wild")

	tests := []struct {
		sni  string
		want *gwtest.Leaf
		why  string
	}{
		{"api.example.test", api, "an exact name beats wildcards"},
		{"www.example.test", broad, "two wildcards match: *.test's rule has priority 100"},
		{"a.b.example.test", broad, "'*' spans labels"},
		{"legacy.example.org", legacy, "inline certificate"},
		{"other.test", broad, "wildcard"},
		{"", wild, "no SNI: the first listener's certificate"},
		{"nothing.invalid", wild, "no match: the first listener's certificate"},
	}
	cfg := &tls.Config{InsecureSkipVerify: true}
	for _, tc := range tests {
		cs, err := handshake(addr, tc.sni, cfg)
		if err != nil {
			t.Fatalf("SNI %q: %v", tc.sni, err)
		}
		got := cs.PeerCertificates[0]
		if got.SerialNumber.Cmp(tc.want.Cert.SerialNumber) != 0 || !slices.Equal(got.DNSNames, tc.want.Cert.DNSNames) {
			t.Errorf("SNI %q (%s): got serial %x SANs %v, want %x %v", tc.sni, tc.why,
				got.SerialNumber, got.DNSNames, tc.want.Cert.SerialNumber, tc.want.Cert.DNSNames)
		}
		if len(cs.PeerCertificates) != 2 {
			t.Errorf("SNI %q: chain of %d, want leaf and CA", tc.sni, len(cs.PeerCertificates))
		}
		if cs.NegotiatedProtocol != "" {
			t.Errorf("SNI %q: ALPN %q negotiated without being asked", tc.sni, cs.NegotiatedProtocol)
		}
	}

	// ALPN offers h2 and http/1.1, and a verifying client accepts the
	// chain for the name it asked for.
	cs, err := handshake(addr, "api.example.test", &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2", "http/1.1"}})
	if err != nil || cs.NegotiatedProtocol != "h2" {
		t.Errorf("ALPN: %q, %v; want h2", cs.NegotiatedProtocol, err)
	}
	cs, err = handshake(addr, "api.example.test", &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"http/1.1"}})
	if err != nil || cs.NegotiatedProtocol != "http/1.1" {
		t.Errorf("ALPN: %q, %v; want http/1.1", cs.NegotiatedProtocol, err)
	}

	// The status page shows each certificate's version and serial.
	st := gw.Status()
	for _, c := range st.Certificates {
		if c.Name == "api" && (c.Version != apiVersion || c.Serial != api.Serial()) {
			t.Errorf("status of api: %+v, want version %s serial %s", c, apiVersion, api.Serial())
		}
	}
}

// TestRequireSNI refuses a handshake without a server name when the first
// listener requires one, and serves it when the name is given.
func TestRequireSNI(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	a := ca.Issue(t, gwtest.ECDSA, "a.example.test")
	pool := gwtest.StartPool(t, "app", 1, nil)
	port := gwtest.FreePort(t, "127.0.0.1")
	gw := startGateway(t, yamlf(`
admin: {address: "off"}
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: https, port: %d}]
sslCertificates: [{name: a, data: "%s"}]
httpListeners:
  - {name: a, frontendPort: https, protocol: Https, hostName: a.example.test, requireServerNameIndication: true, sslCertificate: a}
backendAddressPools: [{name: app, backendAddresses: [{ipAddress: %s}]}]
backendHttpSettingsCollection: [{name: app, port: %d, protocol: Http}]
requestRoutingRules: [{name: a, ruleType: Basic, httpListener: a, backendAddressPool: app, backendHttpSettings: app}]
`, port, a.PFX(t, ""), pool[0].IP, pool[0].Port))

	cfg := &tls.Config{InsecureSkipVerify: true}
	if _, err := handshake(gw.Addr("a"), "", cfg); err == nil {
		t.Error("handshake without SNI succeeded")
	}
	if _, err := handshake(gw.Addr("a"), "b.example.test", cfg); err == nil {
		t.Error("handshake with an unknown name succeeded")
	}
	if _, err := handshake(gw.Addr("a"), "a.example.test", cfg); err != nil {
		t.Errorf("handshake with SNI: %v", err)
	}
}

// TestVaultCertificateErrors checks that a secret with no private key, or
// with a key that is not the certificate's, keeps its listener from
// serving with a clear reason in readiness, while the others serve.
func TestVaultCertificateErrors(t *testing.T) {
	v := vaulttest.Start(t, nil)
	ca := gwtest.NewCA(t, "CA")
	good := ca.Issue(t, gwtest.ECDSA, "good.example.test")
	nokey := ca.Issue(t, gwtest.ECDSA, "nokey.example.test")
	v.SetSecret("good", good.PFX(t, ""), certs.ContentTypePKCS12)
	v.SetSecret("nokey", nokey.CertOnlyPEM(), certs.ContentTypePEM)
	mismatch := ca.Issue(t, gwtest.ECDSA, "mismatch.example.test")
	other := ca.Issue(t, gwtest.ECDSA, "other.example.test")
	mismatchPEM := strings.SplitAfter(other.PEM(t), "-----END PRIVATE KEY-----\n")[0] + mismatch.CertOnlyPEM()
	v.SetSecret("mismatch", mismatchPEM, certs.ContentTypePEM)

	pool := gwtest.StartPool(t, "app", 1, nil)
	port := gwtest.FreePort(t, "127.0.0.1")
	gw := startGateway(t, vaultSection(v)+yamlf(`
admin: {address: "127.0.0.1:0"}
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: https, port: %d}]
sslCertificates:
  - {name: good, keyVaultSecretId: "%s/secrets/good"}
  - {name: nokey, keyVaultSecretId: "%s/secrets/nokey"}
  - {name: mismatch, keyVaultSecretId: "%s/secrets/mismatch"}
httpListeners:
  - {name: good, frontendPort: https, protocol: Https, hostName: good.example.test, sslCertificate: good}
  - {name: nokey, frontendPort: https, protocol: Https, hostName: nokey.example.test, sslCertificate: nokey}
  - {name: mismatch, frontendPort: https, protocol: Https, hostName: mismatch.example.test, sslCertificate: mismatch}
backendAddressPools: [{name: app, backendAddresses: [{ipAddress: %s}]}]
backendHttpSettingsCollection: [{name: app, port: %d, protocol: Http}]
requestRoutingRules:
  - {name: good, ruleType: Basic, priority: 1, httpListener: good, backendAddressPool: app, backendHttpSettings: app}
  - {name: nokey, ruleType: Basic, priority: 2, httpListener: nokey, backendAddressPool: app, backendHttpSettings: app}
  - {name: mismatch, ruleType: Basic, priority: 3, httpListener: mismatch, backendAddressPool: app, backendHttpSettings: app}
`, port, v.URL, v.URL, v.URL, pool[0].IP, pool[0].Port))

	// Readiness names the listeners that wait and why.
	var ready struct {
		Ready   bool
		Waiting []struct{ Listener, Reason string }
	}
	eventually(t, "both bad certificates to report an error", func() bool {
		resp, err := http.Get("http://" + gw.AdminAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("/readyz = %d, want 503", resp.StatusCode)
		}
		json.NewDecoder(resp.Body).Decode(&ready)
		return len(ready.Waiting) == 2 && strings.Contains(ready.Waiting[0].Reason, ":") && strings.Contains(ready.Waiting[1].Reason, ":")
	})
	reasons := map[string]string{}
	for _, w := range ready.Waiting {
		reasons[w.Listener] = w.Reason
	}
	if !strings.Contains(reasons["nokey"], "no private key") {
		t.Errorf("nokey waits because %q", reasons["nokey"])
	}
	if !strings.Contains(reasons["mismatch"], "does not match") {
		t.Errorf("mismatch waits because %q", reasons["mismatch"])
	}

	// The good listener serves; the others refuse handshakes.
	cfg := &tls.Config{RootCAs: ca.Pool()}
	if _, err := handshake(gw.Addr("good"), "good.example.test", cfg); err != nil {
		t.Errorf("good listener: %v", err)
	}
	for _, name := range []string{"nokey.example.test", "mismatch.example.test"} {
		if _, err := handshake(gw.Addr("good"), name, cfg); err == nil {
			t.Errorf("%s: handshake succeeded without a usable certificate", name)
		}
	}

	// No key material in the logs.
	logs := gw.logs.String()
	if strings.Contains(logs, "PRIVATE KEY") || strings.Contains(logs, v.Admin.ClientSecret) {
		t.Error("the logs hold key material or the client secret")
	}
	resp, _ := http.Get("http://" + gw.AdminAddr() + "/status")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "PRIVATE KEY") || strings.Contains(string(body), v.Admin.ClientSecret) {
		t.Error("the status page holds key material or the client secret")
	}
}

// TestSessionResumption resumes a TLS 1.3 session by default and never
// when tlsSessionResumption is Disabled.
func TestSessionResumption(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	leaf := ca.Issue(t, gwtest.ECDSA, "www.example.test")
	pool := gwtest.StartPool(t, "app", 1, nil)
	for _, tc := range []struct {
		setting string
		resume  bool
	}{{"", true}, {"tlsSessionResumption: Disabled", false}} {
		doc := basicDoc(t, leaf, gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1"), pool, "") + tc.setting + "\n"
		gw := startGateway(t, doc)
		c := client(gw.Addr("site"), ca.Pool(), false)
		cache := tls.NewLRUClientSessionCache(4)
		c.Transport.(*http.Transport).TLSClientConfig.ClientSessionCache = cache
		var resumed []bool
		for range 2 {
			resp, err := c.Get("https://www.example.test/")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			resumed = append(resumed, resp.TLS.DidResume)
			c.CloseIdleConnections() // the next request needs a new connection
		}
		if resumed[0] || resumed[1] != tc.resume {
			t.Errorf("%q: resumed %v, want [false %v]", tc.setting, resumed, tc.resume)
		}
	}
}

// TestVaultDownAtStart starts a gateway while its vault is down: the
// listener waits and readiness says why, and it serves once the vault is
// back.
func TestVaultDownAtStart(t *testing.T) {
	v := vaulttest.Start(t, nil)
	ca := gwtest.NewCA(t, "CA")
	leaf := ca.Issue(t, gwtest.ECDSA, "site.example.test")
	v.SetSecret("site", leaf.PFX(t, ""), certs.ContentTypePKCS12)
	v.Stop()

	pool := gwtest.StartPool(t, "app", 1, nil)
	port := gwtest.FreePort(t, "127.0.0.1")
	gw := startGateway(t, vaultSection(v)+yamlf(`
admin: {address: "127.0.0.1:0"}
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: https, port: %d}]
sslCertificates: [{name: site, keyVaultSecretId: "%s/secrets/site"}]
httpListeners: [{name: site, frontendPort: https, protocol: Https, hostName: site.example.test, sslCertificate: site}]
backendAddressPools: [{name: app, backendAddresses: [{ipAddress: %s}]}]
backendHttpSettingsCollection: [{name: app, port: %d, protocol: Http}]
requestRoutingRules: [{name: site, ruleType: Basic, httpListener: site, backendAddressPool: app, backendHttpSettings: app}]
`, port, v.URL, pool[0].IP, pool[0].Port))

	eventually(t, "a failed attempt to be reported", func() bool {
		st := gw.Status()
		return !st.Ready && strings.Contains(st.Listeners[0].Waiting, "certificate site has not loaded: ")
	})
	if _, err := handshake(gw.Addr("site"), "site.example.test", &tls.Config{RootCAs: ca.Pool()}); err == nil {
		t.Error("handshake succeeded before the certificate loaded")
	}

	v.Restart()
	eventually(t, "the certificate to load after the vault came back", gw.Ready)
	cs, err := handshake(gw.Addr("site"), "site.example.test", &tls.Config{RootCAs: ca.Pool()})
	if err != nil || cs.PeerCertificates[0].SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0 {
		t.Errorf("after the vault came back: %v", err)
	}
}
