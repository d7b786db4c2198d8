package gateway_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/vaulttest"
)

// poolDoc is an HTTP listener in front of pool with the given settings and
// probes (YAML fragments).
func poolDoc(port int, pool []*gwtest.Backend, settings, probes string) string {
	var addrs []string
	for _, b := range pool {
		addrs = append(addrs, "{ipAddress: "+b.IP+"}")
	}
	return yamlf(`
admin: {address: "127.0.0.1:0"}
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: http, port: %d}]
httpListeners: [{name: web, frontendPort: http, protocol: Http}]
backendAddressPools: [{name: app, backendAddresses: [%s]}]
backendHttpSettingsCollection:
  - {name: app, port: %d, protocol: Http, %s}
probes: %s
requestRoutingRules: [{name: web, ruleType: Basic, httpListener: web, backendAddressPool: app, backendHttpSettings: app}]
`, port, strings.Join(addrs, ", "), pool[0].Port, settings, probes)
}

const fastProbe = `[{name: health, protocol: Http, host: app.internal, path: /health, interval: 1, timeout: 1, unhealthyThreshold: 2, match: {statusCodes: ["200-299"], body: ok}}]`

// TestProbesAndRoundRobin marks a server down when its probe fails and up
// when it passes again, spreads requests over healthy servers, and
// answers 502 when none is healthy.
func TestProbesAndRoundRobin(t *testing.T) {
	pool := gwtest.StartPool(t, "app", 2, nil)
	gw := startGateway(t, poolDoc(gwtest.FreePort(t, "127.0.0.1"), pool, "probe: health", fastProbe))
	c := client(gw.Addr("web"), nil, false)
	healthy := func(addr string) func() bool {
		return func() bool {
			for _, b := range gw.Status().Backends {
				if b.Address == addr {
					return b.Probed && b.Healthy
				}
			}
			return false
		}
	}
	down := func(addr string) func() bool {
		return func() bool { return !healthy(addr)() && probed(gw, addr) }
	}
	eventually(t, "both servers probed healthy", func() bool { return healthy(pool[0].Addr())() && healthy(pool[1].Addr())() })

	// Round robin: both servers get requests.
	seen := map[string]int{}
	for range 10 {
		_, e := get(t, c, "http://web.test/")
		seen[e.Backend]++
	}
	if seen["app1"] != 5 || seen["app2"] != 5 {
		t.Errorf("requests spread %v, want 5 each", seen)
	}

	// app2 fails its probe: marked down, requests go to app1 only.
	pool[1].SetHealthy(false)
	eventually(t, "app2 marked down", down(pool[1].Addr()))
	for range 5 {
		if _, e := get(t, c, "http://web.test/"); e.Backend != "app1" {
			t.Fatalf("request went to %q while app2 is down", e.Backend)
		}
	}
	if !strings.Contains(gw.logs.String(), `"msg":"backend unhealthy"`) {
		t.Error("no log line for the server going down")
	}

	// Metrics show it.
	metrics := scrape(t, gw.AdminAddr())
	if !strings.Contains(metrics, `keygate_gateway_backend_health{address="`+pool[1].Addr()+`",gateway="",pool="app",settings="app"} 0`) {
		t.Errorf("metrics do not show app2 down:\n%s", grepLines(metrics, "backend_health"))
	}

	// Both down: 502.
	pool[0].SetHealthy(false)
	eventually(t, "app1 marked down", down(pool[0].Addr()))
	if resp, _ := get(t, c, "http://web.test/"); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("no healthy server: status %d, want 502", resp.StatusCode)
	}

	// Back up after one good probe.
	pool[1].SetHealthy(true)
	eventually(t, "app2 marked up", healthy(pool[1].Addr()))
	if resp, e := get(t, c, "http://web.test/"); resp.StatusCode != http.StatusOK || e.Backend != "app2" {
		t.Errorf("after app2 recovered: %d from %q", resp.StatusCode, e.Backend)
	}
}

func probed(gw *testGateway, addr string) bool {
	for _, b := range gw.Status().Backends {
		if b.Address == addr {
			return b.Probed
		}
	}
	return false
}

// TestAffinityAndDraining keeps a client on its server by cookie, and
// keeps it there for the drain time after the server fails its probe,
// while new clients go elsewhere.
func TestAffinityAndDraining(t *testing.T) {
	pool := gwtest.StartPool(t, "app", 2, nil)
	gw := startGateway(t, poolDoc(gwtest.FreePort(t, "127.0.0.1"), pool,
		"probe: health, cookieBasedAffinity: Enabled, connectionDraining: {enabled: true, drainTimeoutInSec: 3600}", fastProbe))
	c := client(gw.Addr("web"), nil, false)
	eventually(t, "servers probed", func() bool { return probed(gw, pool[0].Addr()) && probed(gw, pool[1].Addr()) })

	resp, first := get(t, c, "http://web.test/")
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "ApplicationGatewayAffinity" {
			cookie = ck
		}
	}
	if cookie == nil || strings.Contains(cookie.Value, "127.0.0") {
		t.Fatalf("affinity cookie %v: missing, or it reveals the server's address", cookie)
	}
	sticky := func() string {
		req, _ := http.NewRequest("GET", "http://web.test/", nil)
		req.AddCookie(cookie)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	for range 4 {
		if got := sticky(); !strings.Contains(got, `"backend":"`+first.Backend+`"`) {
			t.Fatalf("cookie request went elsewhere: %s", got)
		}
	}

	// The cookie's server goes down: its session stays while draining; a
	// new client goes to the other.
	var mine, other *gwtest.Backend
	if first.Backend == "app1" {
		mine, other = pool[0], pool[1]
	} else {
		mine, other = pool[1], pool[0]
	}
	mine.SetHealthy(false)
	eventually(t, "the cookie's server marked down", func() bool { return !healthyIn(gw, mine.Addr()) })
	if got := sticky(); !strings.Contains(got, `"backend":"`+mine.Name+`"`) {
		t.Errorf("draining session moved: %s", got)
	}
	for range 3 {
		if _, e := get(t, c, "http://web.test/"); e.Backend != other.Name {
			t.Errorf("new client sent to %q, want %q", e.Backend, other.Name)
		}
	}
}

func healthyIn(gw *testGateway, addr string) bool {
	for _, b := range gw.Status().Backends {
		if b.Address == addr {
			return b.Healthy
		}
	}
	return false
}

// TestAffinityWithoutDraining moves a session as soon as its server is
// down.
func TestAffinityWithoutDraining(t *testing.T) {
	pool := gwtest.StartPool(t, "app", 2, nil)
	gw := startGateway(t, poolDoc(gwtest.FreePort(t, "127.0.0.1"), pool, "probe: health, cookieBasedAffinity: Enabled", fastProbe))
	c := client(gw.Addr("web"), nil, false)
	eventually(t, "servers probed", func() bool { return probed(gw, pool[0].Addr()) && probed(gw, pool[1].Addr()) })
	resp, first := get(t, c, "http://web.test/")
	cookie := resp.Cookies()[0]
	for _, b := range pool {
		if b.Name == first.Backend {
			b.SetHealthy(false)
			eventually(t, "server down", func() bool { return !healthyIn(gw, b.Addr()) })
		}
	}
	req, _ := http.NewRequest("GET", "http://web.test/", nil)
	req.AddCookie(cookie)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.Cookies()) == 0 || resp.Cookies()[0].Value == cookie.Value {
		t.Error("a session whose server is down kept its server")
	}
}

// TestRequestTimeout answers 504 when the server takes longer than
// requestTimeout.
func TestRequestTimeout(t *testing.T) {
	pool := gwtest.StartPool(t, "app", 1, nil)
	gw := startGateway(t, poolDoc(gwtest.FreePort(t, "127.0.0.1"), pool, "requestTimeout: 1", "[]"))
	c := client(gw.Addr("web"), nil, false)
	if resp, _ := get(t, c, "http://web.test/slow?d=3s"); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("slow backend: %d, want 504", resp.StatusCode)
	}
	if resp, _ := get(t, c, "http://web.test/slow?d=10ms"); resp.StatusCode != http.StatusOK {
		t.Errorf("quick backend: %d, want 200", resp.StatusCode)
	}
}

// TestHTTPSBackendTrust verifies HTTPS servers against trustedRootCertificates
// (inline, and from the vault) and refuses them against the system roots.
func TestHTTPSBackendTrust(t *testing.T) {
	v := vaulttest.Start(t, nil)
	backendCA := gwtest.NewCA(t, "backend CA")
	leaf := backendCA.Issue(t, gwtest.ECDSA, "app.internal", "127.0.0.2")
	cert := leaf.TLS()
	pool := gwtest.StartPool(t, "tls", 1, &cert)
	v.SetSecret("backend-ca", string(backendCA.PEM()), "")

	port := gwtest.FreePort(t, "127.0.0.1")
	gw := startGateway(t, vaultSection(v)+yamlf(`
admin: {address: "off"}
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: http, port: %d}]
trustedRootCertificates:
  - {name: inline-ca, data: "%s"}
  - {name: vault-ca, keyVaultSecretId: "%s/secrets/backend-ca"}
httpListeners:
  - {name: inline, frontendPort: http, protocol: Http, hostName: inline.test}
  - {name: vault, frontendPort: http, protocol: Http, hostName: vault.test}
  - {name: byname, frontendPort: http, protocol: Http, hostName: byname.test}
  - {name: system, frontendPort: http, protocol: Http, hostName: system.test}
backendAddressPools: [{name: app, backendAddresses: [{ipAddress: %s}]}]
backendHttpSettingsCollection:
  - {name: inline, port: %d, protocol: Https, trustedRootCertificates: [inline-ca]}
  - {name: vault, port: %d, protocol: Https, trustedRootCertificates: [vault-ca]}
  - {name: byname, port: %d, protocol: Https, hostName: app.internal, trustedRootCertificates: [inline-ca]}
  - {name: system, port: %d, protocol: Https}
requestRoutingRules:
  - {name: inline, ruleType: Basic, priority: 1, httpListener: inline, backendAddressPool: app, backendHttpSettings: inline}
  - {name: vault, ruleType: Basic, priority: 2, httpListener: vault, backendAddressPool: app, backendHttpSettings: vault}
  - {name: byname, ruleType: Basic, priority: 3, httpListener: byname, backendAddressPool: app, backendHttpSettings: byname}
  - {name: system, ruleType: Basic, priority: 4, httpListener: system, backendAddressPool: app, backendHttpSettings: system}
`, port, base64.StdEncoding.EncodeToString(backendCA.Cert.Raw), v.URL, pool[0].IP,
		pool[0].Port, pool[0].Port, pool[0].Port, pool[0].Port))
	eventually(t, "the vault's root to load", func() bool {
		for _, c := range gw.Status().Certificates {
			if c.Name == "vault-ca" {
				return c.Ready
			}
		}
		return false
	})

	c := client(gw.Addr("inline"), nil, false)
	for _, host := range []string{"inline.test", "vault.test", "byname.test"} {
		resp, e := get(t, c, "http://"+host+"/")
		if resp.StatusCode != http.StatusOK || e.Backend != "tls1" {
			t.Errorf("%s: %d from %q, want 200 from the HTTPS backend\n%s", host, resp.StatusCode, e.Backend, grepLines(gw.logs.String(), "failed"))
		}
	}
	if resp, _ := get(t, c, "http://system.test/"); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("backend certificate unknown to the system roots: %d, want 502", resp.StatusCode)
	}
	if !strings.Contains(gw.logs.String(), "certificate signed by unknown authority") {
		t.Error("the refused backend's reason is not in the logs")
	}
}

func scrape(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
