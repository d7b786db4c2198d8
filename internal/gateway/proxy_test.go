package gateway_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/gateway/gwtest"
)

// basicDoc is a gateway with an HTTPS listener (inline certificate) and an
// HTTP one on loopback, both routed to pool by settings.
func basicDoc(t *testing.T, leaf *gwtest.Leaf, httpsPort, httpPort int, pool []*gwtest.Backend, settings string) string {
	t.Helper()
	var addrs []string
	for _, b := range pool {
		addrs = append(addrs, "{ipAddress: "+b.IP+"}")
	}
	return yamlf(`
name: test
admin: {address: "127.0.0.1:0"}
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts:
  - {name: https, port: %d}
  - {name: http, port: %d}
sslCertificates:
  - {name: site, data: "%s", password: pw}
httpListeners:
  - {name: site, frontendPort: https, protocol: Https, hostNames: [www.example.test, "*.example.test"], sslCertificate: site}
  - {name: plain, frontendPort: http, protocol: Http}
backendAddressPools:
  - name: app
    backendAddresses: [%s]
backendHttpSettingsCollection:
  - {name: app, port: %d, protocol: Http%s}
requestRoutingRules:
  - {name: site, ruleType: Basic, priority: 10, httpListener: site, backendAddressPool: app, backendHttpSettings: app}
  - {name: plain, ruleType: Basic, priority: 20, httpListener: plain, backendAddressPool: app, backendHttpSettings: app}
`, httpsPort, httpPort, leaf.PFX(t, "pw"), strings.Join(addrs, ", "), pool[0].Port, settings)
}

func TestProxyHeadersAndHTTP2(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	leaf := ca.Issue(t, gwtest.ECDSA, "www.example.test", "*.example.test")
	pool := gwtest.StartPool(t, "app", 1, nil)
	httpsPort, httpPort := gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1")
	gw := startGateway(t, basicDoc(t, leaf, httpsPort, httpPort, pool, ""))

	for _, h2 := range []bool{false, true} {
		c := client(gw.Addr("site"), ca.Pool(), h2)
		resp, e := get(t, c, "https://www.example.test/some/path?x=1")
		if resp.StatusCode != http.StatusOK || e.Backend != "app1" {
			t.Fatalf("status %d from %q", resp.StatusCode, e.Backend)
		}
		wantProto := "HTTP/1.1"
		if h2 {
			wantProto = "HTTP/2.0"
		}
		if resp.Proto != wantProto {
			t.Errorf("client protocol %s, want %s", resp.Proto, wantProto)
		}
		if e.Proto != "HTTP/1.1" {
			t.Errorf("backend got %s, want HTTP/1.1", e.Proto)
		}
		checks := []struct{ name, got, want string }{
			{"path", e.Path, "/some/path"},
			{"query", e.Query, "x=1"},
			{"Host", e.Host, "www.example.test"},
			{"X-Forwarded-For", e.XForwardedFor, "127.0.0.1"},
			{"X-Forwarded-Proto", e.XForwardedProt, "https"},
			{"X-Forwarded-Host", e.XForwardedHost, "www.example.test"},
			{"X-Original-Host", e.XOriginalHost, "www.example.test"},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("h2=%v: %s = %q, want %q", h2, c.name, c.got, c.want)
			}
		}
	}

	// Over plain HTTP, with a client-sent X-Forwarded-For kept in front.
	c := client(gw.Addr("plain"), nil, false)
	req, _ := http.NewRequest("GET", "http://anything.test/", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e gwtest.Echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if e.XForwardedProt != "http" || e.XForwardedFor != "203.0.113.9, 127.0.0.1" || e.XForwardedPort != strconv.Itoa(httpPort) {
		t.Errorf("over HTTP: X-Forwarded-Proto %q, -For %q, -Port %q", e.XForwardedProt, e.XForwardedFor, e.XForwardedPort)
	}
}
