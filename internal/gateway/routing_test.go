package gateway_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/keygate/keygate/internal/gateway/gwtest"
)

// TestPathRoutingAndRedirects routes by path to two pools (one reached by
// DNS name), redirects by path and by listener, with each redirect type.
func TestPathRoutingAndRedirects(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	leaf := ca.Issue(t, gwtest.ECDSA, "shop.example.test")
	web := gwtest.StartPool(t, "web", 1, nil)
	api := gwtest.StartOn(t, "api", []string{"127.0.0.1"}, nil)
	httpsPort, httpPort := gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1")
	gw := startGateway(t, yamlf(`
admin: {address: "off"}
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: https, port: %d}, {name: http, port: %d}]
sslCertificates: [{name: shop, data: "%s"}]
httpListeners:
  - {name: shop, frontendPort: https, protocol: Https, hostName: shop.example.test, sslCertificate: shop}
  - {name: shop-http, frontendPort: http, protocol: Http, hostName: shop.example.test}
  - {name: other-http, frontendPort: http, protocol: Http}
backendAddressPools:
  - {name: web, backendAddresses: [{ipAddress: %s}]}
  - {name: api, backendAddresses: [{fqdn: localhost}]}
backendHttpSettingsCollection:
  - {name: web, port: %d, protocol: Http}
  - {name: api, port: %d, protocol: Http, pickHostNameFromBackendAddress: true}
redirectConfigurations:
  - {name: to-https, redirectType: Permanent, targetListener: shop, includePath: true, includeQueryString: true}
  - {name: old, redirectType: Found, targetUrl: "https://new.example.test/landing", includePath: false, includeQueryString: true}
  - {name: moved, redirectType: SeeOther, targetUrl: "https://archive.example.test/base/", includePath: true}
  - {name: temp, redirectType: Temporary, targetUrl: "https://temp.example.test"}
urlPathMaps:
  - name: shop
    defaultBackendAddressPool: web
    defaultBackendHttpSettings: web
    pathRules:
      - {name: api, paths: ["/api/*", "/v1"], backendAddressPool: api, backendHttpSettings: api}
      - {name: old, paths: ["/old/*"], redirectConfiguration: old}
      - {name: moved, paths: ["/moved/*"], redirectConfiguration: moved}
requestRoutingRules:
  - {name: shop, ruleType: PathBasedRouting, priority: 10, httpListener: shop, urlPathMap: shop}
  - {name: shop-http, ruleType: Basic, priority: 20, httpListener: shop-http, redirectConfiguration: to-https}
  - {name: other-http, ruleType: Basic, priority: 30, httpListener: other-http, redirectConfiguration: temp}
`, httpsPort, httpPort, leaf.PFX(t, ""), web[0].IP, web[0].Port, api[0].Port))

	c := client(gw.Addr("shop"), ca.Pool(), true)
	routes := []struct{ path, backend, host string }{
		{"/", "web1", "shop.example.test"},
		{"/api/orders", "api1", "localhost"}, // pickHostNameFromBackendAddress
		{"/API/orders", "api1", "localhost"}, // paths ignore case
		{"/v1", "api1", "localhost"},
		{"/v1/x", "web1", "shop.example.test"}, // "/v1" is exact
		{"/apiary", "web1", "shop.example.test"},
	}
	for _, r := range routes {
		resp, e := get(t, c, "https://shop.example.test"+r.path)
		if resp.StatusCode != http.StatusOK || e.Backend != r.backend || e.Host != r.host || e.Path != r.path {
			t.Errorf("%s: status %d backend %q host %q path %q; want %s with Host %s", r.path,
				resp.StatusCode, e.Backend, e.Host, e.Path, r.backend, r.host)
		}
	}

	redirects := []struct {
		client   *http.Client
		url      string
		status   int
		location string
	}{
		{c, "https://shop.example.test/old/page?q=1", http.StatusFound, "https://new.example.test/landing?q=1"},
		{c, "https://shop.example.test/moved/a/b?q=1", http.StatusSeeOther, "https://archive.example.test/base/moved/a/b"},
		{client(gw.Addr("shop-http"), nil, false), "http://shop.example.test/cart?id=7", http.StatusMovedPermanently,
			"https://shop.example.test:" + strconv.Itoa(httpsPort) + "/cart?id=7"},
		{client(gw.Addr("shop-http"), nil, false), "http://elsewhere.test/x?y=z", http.StatusTemporaryRedirect,
			"https://temp.example.test"},
	}
	for _, r := range redirects {
		resp, _ := get(t, r.client, r.url)
		if resp.StatusCode != r.status || resp.Header.Get("Location") != r.location {
			t.Errorf("%s: %d to %q, want %d to %q", r.url, resp.StatusCode, resp.Header.Get("Location"), r.status, r.location)
		}
	}

	// A Host header no listener takes, on the HTTPS port: routing goes by
	// Host, not by the TLS server name.
	req, _ := http.NewRequest("GET", "https://shop.example.test/", nil)
	req.Host = "unknown.example.test"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown host: %d, want 404", resp.StatusCode)
	}
}
