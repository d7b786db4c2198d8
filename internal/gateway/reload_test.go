package gateway_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/vaulttest"
)

// startReloadable starts a gateway from a file holding doc, so that a
// reload reads that file again; it returns the file's path.
func startReloadable(t *testing.T, doc string, opts gateway.Options) (*testGateway, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	rewrite(t, path, doc)
	opts.ConfigFile = path
	return startGatewayWith(t, doc, opts), path
}

func rewrite(t *testing.T, path, doc string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
}

// reloadAnswer is what POST /reload answers, success or failure.
type reloadAnswer struct {
	gateway.ReloadResult
	gateway.ReloadFailure
}

// postReload asks the gateway's admin listener for a reload.
func postReload(t *testing.T, gw *testGateway) (int, reloadAnswer) {
	t.Helper()
	resp, err := http.Post("http://"+gw.AdminAddr()+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var a reloadAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	return resp.StatusCode, a
}

// reloadDoc is a gateway whose HTTPS listener site (www.example.test)
// routes to pool, with extra YAML spliced in: the TLS policy, and more
// certificates, listeners and rules.
type reloadDoc struct {
	port                    int
	site                    *gwtest.Leaf
	blue, green             *gwtest.Backend
	pool, policy            string
	certs, listeners, rules string
}

func (d reloadDoc) String(t *testing.T) string {
	return yamlf(`
name: reload
admin: {address: "127.0.0.1:0"}
%s
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: https, port: %d}]
sslCertificates:
  - {name: site, data: "%s", password: pw}
%s
httpListeners:
  - {name: site, frontendPort: https, protocol: Https, hostName: www.example.test, sslCertificate: site}
%s
backendAddressPools:
  - {name: blue, backendAddresses: [{ipAddress: %s}]}
  - {name: green, backendAddresses: [{ipAddress: %s}]}
backendHttpSettingsCollection:
  - {name: blue, port: %d, protocol: Http}
  - {name: green, port: %d, protocol: Http}
requestRoutingRules:
  - {name: site, ruleType: Basic, priority: 10, httpListener: site, backendAddressPool: %s, backendHttpSettings: %s}
%s
`, d.policy, d.port, d.site.PFX(t, "pw"), d.certs, d.listeners, d.blue.IP, d.green.IP, d.blue.Port, d.green.Port,
		d.pool, d.pool, d.rules)
}

// reloadLoad sends requests for www.example.test from clients that keep
// their connection (HTTP/1.1 and HTTP/2) and clients that open one per
// request, recording which backend answered each and how many
// connections each client opened. Each client stops by itself after 30
// seconds or 5000 requests.
type reloadLoad struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	failures []string
	clients  []*loadClientState
}

type loadClientState struct {
	name     string
	fresh    bool
	dials    atomic.Int64
	answered atomic.Int64
	mu       sync.Mutex
	last     string // the backend of the last answer
}

func startReloadLoad(t *testing.T, addr string, roots *tls.Config) *reloadLoad {
	t.Helper()
	l := &reloadLoad{stop: make(chan struct{})}
	kinds := []struct {
		name      string
		h2, fresh bool
	}{{"h1-kept", false, false}, {"h1-kept", false, false}, {"h2-kept", true, false},
		{"h2-kept", true, false}, {"fresh", false, true}, {"fresh", false, true}}
	for i, k := range kinds {
		cs := &loadClientState{name: fmt.Sprintf("%s-%d", k.name, i), fresh: k.fresh}
		l.clients = append(l.clients, cs)
		d := &net.Dialer{Timeout: 5 * time.Second}
		tr := &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				cs.dials.Add(1)
				return d.DialContext(ctx, network, addr)
			},
			TLSClientConfig:   roots.Clone(),
			ForceAttemptHTTP2: k.h2,
			DisableKeepAlives: k.fresh,
		}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		l.wg.Go(func() { l.run(c, cs) })
	}
	t.Cleanup(l.finish)
	eventually(t, "every load client to get an answer", func() bool {
		for _, c := range l.clients {
			if c.answered.Load() == 0 {
				return false
			}
		}
		return true
	})
	return l
}

func (l *reloadLoad) run(c *http.Client, cs *loadClientState) {
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n < 5000 && time.Now().Before(deadline); n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		backend, err := l.request(c)
		if err != nil {
			l.mu.Lock()
			l.failures = append(l.failures, cs.name+": "+err.Error())
			l.mu.Unlock()
			continue
		}
		cs.mu.Lock()
		cs.last = backend
		cs.mu.Unlock()
		cs.answered.Add(1)
	}
}

func (l *reloadLoad) request(c *http.Client) (string, error) {
	resp, err := c.Get("https://www.example.test/load")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var e gwtest.Echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return e.Backend, nil
}

func (l *reloadLoad) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// TestReloadUnderLoad reloads a configuration that moves a route to
// another backend, adds a listener (a host name with its own
// certificate) on the same port and tightens the TLS policy, while
// clients keep sending requests over kept-alive HTTP/1.1 and HTTP/2
// connections and over new ones. No request fails, kept-alive
// connections stay open and reach the new backend, and the new host name
// is served with its certificate.
func TestReloadUnderLoad(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	blue, green := gwtest.StartPool(t, "blue", 1, nil)[0], gwtest.StartPool(t, "green", 1, nil)[0]
	d := reloadDoc{port: gwtest.FreePort(t, "127.0.0.1"), site: ca.Issue(t, gwtest.ECDSA, "www.example.test"),
		blue: blue, green: green, pool: "blue"}
	gw, path := startReloadable(t, d.String(t), gateway.Options{})
	addr := gw.Addr("site")
	tls12 := &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS12}
	if _, err := handshake(addr, "www.example.test", tls12); err != nil {
		t.Fatalf("TLS 1.2 before the reload: %v", err)
	}

	load := startReloadLoad(t, addr, &tls.Config{RootCAs: ca.Pool()})

	newLeaf := ca.Issue(t, gwtest.RSA, "new.example.test")
	d.pool = "green"
	d.policy = "sslPolicy: {policyType: CustomV2, minProtocolVersion: TLSv1_3, cipherSuites: [TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384]}"
	d.certs = fmt.Sprintf(`  - {name: new, data: "%s", password: pw}`, newLeaf.PFX(t, "pw"))
	d.listeners = "  - {name: new, frontendPort: https, protocol: Https, hostName: new.example.test, sslCertificate: new}"
	d.rules = "  - {name: new, ruleType: Basic, priority: 20, httpListener: new, backendAddressPool: green, backendHttpSettings: green}"
	rewrite(t, path, d.String(t))
	code, res := postReload(t, gw)
	if code != http.StatusOK || res.Generation != 2 || strings.Join(res.Added, ",") != "new" ||
		strings.Join(res.Changed, ",") != "site" || len(res.Removed) != 0 {
		t.Fatalf("reload answered %d %+v", code, res)
	}

	// Every client, kept-alive ones on their first connection, reaches
	// the new backend.
	for _, c := range load.clients {
		eventually(t, c.name+" to reach the new backend", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.last == "green1"
		})
	}
	load.finish()
	if len(load.failures) > 0 {
		t.Errorf("%d requests failed during the reload; first: %v", len(load.failures), load.failures[:min(3, len(load.failures))])
	}
	for _, c := range load.clients {
		if n := c.dials.Load(); !c.fresh && n != 1 {
			t.Errorf("%s opened %d connections, want its first kept through the reload", c.name, n)
		}
	}

	// The new listener serves its own certificate; the new policy
	// refuses TLS 1.2.
	if got, err := servedSerial(addr, "new.example.test"); err != nil || got != newLeaf.Serial() {
		t.Errorf("new.example.test served serial %s (%v), want %s", got, err, newLeaf.Serial())
	}
	if _, e := get(t, client(addr, ca.Pool(), false), "https://new.example.test/"); e.Backend != "green1" {
		t.Errorf("new.example.test reached %q", e.Backend)
	}
	if _, err := handshake(addr, "www.example.test", tls12); err == nil {
		t.Error("TLS 1.2 accepted after a reload to a TLS 1.3 policy")
	}
	if st := gw.Status(); st.Generation != 2 || !st.Ready {
		t.Errorf("status after the reload: generation %d, ready %v", st.Generation, st.Ready)
	}
	if n := countLogs(gw, "configuration reloaded", map[string]any{"listeners_added": 1, "listeners_changed": 1}); n != 1 {
		t.Errorf("%d 'configuration reloaded' lines with the counts", n)
	}
}

// portsDoc is a gateway of plain HTTP listeners, one per port, each
// routing to pool.
func portsDoc(pool *gwtest.Backend, extra string, ports ...int) string {
	var fp, ls, rs strings.Builder
	for i, p := range ports {
		fmt.Fprintf(&fp, "  - {name: p%d, port: %d}\n", p, p)
		fmt.Fprintf(&ls, "  - {name: l%d, frontendPort: p%d, protocol: Http}\n", p, p)
		fmt.Fprintf(&rs, "  - {name: r%d, ruleType: Basic, priority: %d, httpListener: l%d, backendAddressPool: app, backendHttpSettings: app}\n",
			p, 10+i, p)
	}
	return yamlf(`
name: ports
admin: {address: "127.0.0.1:0"}
%s
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts:
%shttpListeners:
%sbackendAddressPools: [{name: app, backendAddresses: [{ipAddress: %s}]}]
backendHttpSettingsCollection: [{name: app, port: %d, protocol: Http}]
requestRoutingRules:
%s`, extra, fp.String(), ls.String(), pool.IP, pool.Port, rs.String())
}

func refused(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
	}
	return err != nil
}

// TestReloadPorts reloads a configuration that drops one port and adds
// another: the new port serves, and the dropped one stops listening once
// the request in flight on it has completed.
func TestReloadPorts(t *testing.T) {
	pool := gwtest.StartPool(t, "app", 1, nil)
	kept, dropped, added := gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1")
	gw, path := startReloadable(t, portsDoc(pool[0], "", kept, dropped), gateway.Options{})
	droppedAddr := gw.Addr(fmt.Sprintf("l%d", dropped))

	// A slow request in flight on the port the reload drops.
	slow := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + droppedAddr + "/slow?d=1500ms")
		if err == nil {
			defer resp.Body.Close()
			var e gwtest.Echo
			err = json.NewDecoder(resp.Body).Decode(&e)
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		slow <- err
	}()
	eventually(t, "the slow request to reach the backend", func() bool { return pool[0].InFlight() == 1 })

	rewrite(t, path, portsDoc(pool[0], "", kept, added))
	code, res := postReload(t, gw)
	if code != http.StatusOK || strings.Join(res.Added, ",") != fmt.Sprintf("l%d", added) ||
		strings.Join(res.Removed, ",") != fmt.Sprintf("l%d", dropped) || res.Unchanged != 1 {
		t.Fatalf("reload answered %d %+v", code, res)
	}
	if resp, e := get(t, client(fmt.Sprintf("127.0.0.1:%d", added), nil, false), "http://any.test/"); resp.StatusCode != http.StatusOK || e.Backend != "app1" {
		t.Errorf("new port answered %d from %q", resp.StatusCode, e.Backend)
	}
	eventually(t, "the dropped port to stop listening", func() bool { return refused(droppedAddr) })
	if err := <-slow; err != nil {
		t.Errorf("request in flight on the dropped port: %v", err)
	}
	if resp, _ := get(t, client(fmt.Sprintf("127.0.0.1:%d", kept), nil, false), "http://any.test/"); resp.StatusCode != http.StatusOK {
		t.Errorf("kept port answered %d", resp.StatusCode)
	}

	// The removed listener's series are gone; the kept one's stay.
	metrics := adminGet(t, gw, "/metrics")
	if strings.Contains(metrics, fmt.Sprintf(`listener="l%d"`, dropped)) {
		t.Errorf("/metrics still has series of the removed listener l%d", dropped)
	}
	if !strings.Contains(metrics, fmt.Sprintf(`keygate_gateway_requests_total{code="200",gateway="ports",listener="l%d"}`, kept)) {
		t.Errorf("/metrics lost the kept listener l%d:\n%s", kept, metrics)
	}
}

// TestReloadRefused reloads files that cannot be applied: one that does
// not validate, one that changes what cannot change at run time, and one
// whose new port is taken. Each answers 400 naming the problem, and
// changes nothing: the old routes serve, the port bound for the last is
// closed again, and the generation stays.
func TestReloadRefused(t *testing.T) {
	pool := gwtest.StartPool(t, "app", 1, nil)
	port := gwtest.FreePort(t, "127.0.0.1")
	good := portsDoc(pool[0], "", port)
	gw, path := startReloadable(t, good, gateway.Options{})

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	free := gwtest.FreePort(t, "127.0.0.1")

	for _, tc := range []struct {
		name, doc, want string
	}{
		{"invalid", good + "probes: [{name: p, protocl: Http}]\n", "probes[0].protocl: unknown field"},
		{"fixed setting", strings.Replace(good, "name: ports", "name: renamed", 1), "name: cannot change while the gateway runs"},
		{"port taken", portsDoc(pool[0], "", port, free, takenPort), fmt.Sprintf("listening on 127.0.0.1:%d", takenPort)},
		{"file gone", "", "reading configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.doc == "" {
				os.Remove(path)
				defer rewrite(t, path, good)
			} else {
				rewrite(t, path, tc.doc)
			}
			code, res := postReload(t, gw)
			if code != http.StatusBadRequest || !strings.Contains(strings.Join(res.Errors, "\n"), tc.want) {
				t.Errorf("reload answered %d %+v, want 400 naming %q", code, res, tc.want)
			}
			if st := gw.Status(); st.Generation != 1 || len(st.Listeners) != 1 {
				t.Errorf("status after a refused reload: generation %d, %d listeners", st.Generation, len(st.Listeners))
			}
			if resp, _ := get(t, client(fmt.Sprintf("127.0.0.1:%d", port), nil, false), "http://any.test/"); resp.StatusCode != http.StatusOK {
				t.Errorf("old route answered %d", resp.StatusCode)
			}
			if !refused(fmt.Sprintf("127.0.0.1:%d", free)) {
				t.Errorf("port %d of the refused reload is listening", free)
			}
		})
	}

	if n := countLogsNow(gw, "configuration not reloaded; the old one keeps serving", nil); n != 4 {
		t.Errorf("%d error lines for 4 refused reloads", n)
	}
	metrics := adminGet(t, gw, "/metrics")
	if !strings.Contains(metrics, `keygate_gateway_config_reloads_total{gateway="ports",result="failure"} 4`) ||
		!strings.Contains(metrics, `keygate_gateway_config_reloads_total{gateway="ports",result="success"} 0`) {
		t.Errorf("reload metrics:\n%s", grepLines(metrics, "config_reloads"))
	}
}

func adminGet(t *testing.T, gw *testGateway, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + gw.AdminAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// countingTransport counts the requests for vault secrets it carries.
type countingTransport struct {
	base    http.RoundTripper
	secrets atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/secrets/") {
		c.secrets.Add(1)
	}
	return c.base.RoundTrip(r)
}

// TestReloadKeepsVaultCertificate stops the vault, then reloads a
// configuration that adds a listener but leaves the vault certificate's
// reference alone: the certificate is not read again and its listener
// stays ready and serving, on its kept socket.
func TestReloadKeepsVaultCertificate(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{})
	leaf := e.ca.Issue(t, gwtest.ECDSA, "vault.example.test")
	e.importCert("site", leaf)
	counter := &countingTransport{base: e.v.LoopbackClient().Transport}
	hc := &http.Client{Transport: counter}

	doc := e.doc("vault.example.test", "/secrets/site", "")
	gw, path := startReloadable(t, doc, gateway.Options{VaultHTTPClient: hc, NoEvents: true})
	waitServed(t, gw, "vault.example.test", leaf.Serial())
	reads := counter.secrets.Load()
	if reads == 0 {
		t.Fatal("no secret read counted at start")
	}

	e.v.Stop()
	plain := gwtest.FreePort(t, "127.0.0.1")
	more := strings.Replace(doc, "frontendPorts: [", fmt.Sprintf("frontendPorts: [{name: plain, port: %d}, ", plain), 1)
	more = strings.Replace(more, "httpListeners: [", "httpListeners: [{name: plain, frontendPort: plain, protocol: Http}, ", 1)
	more = strings.Replace(more, "requestRoutingRules: [",
		"requestRoutingRules: [{name: plain, ruleType: Basic, httpListener: plain, backendAddressPool: app, backendHttpSettings: app}, ", 1)
	rewrite(t, path, more)
	code, res := postReload(t, gw)
	if code != http.StatusOK || strings.Join(res.Added, ",") != "plain" || res.Unchanged != 1 {
		t.Fatalf("reload answered %d %+v", code, res)
	}

	if got := counter.secrets.Load(); got != reads {
		t.Errorf("%d secret reads after the reload, %d before: the unchanged certificate was read again", got, reads)
	}
	if !gw.Ready() {
		t.Errorf("not ready after the reload: %+v", gw.Status().Listeners)
	}
	if got, err := servedSerial(gw.Addr("site"), "vault.example.test"); err != nil || got != leaf.Serial() {
		t.Errorf("served serial %s (%v) after the reload, want %s", got, err, leaf.Serial())
	}
	if resp, _ := get(t, client(gw.Addr("plain"), nil, false), "http://any.test/"); resp.StatusCode != http.StatusOK {
		t.Errorf("new listener answered %d", resp.StatusCode)
	}
}
