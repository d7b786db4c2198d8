package gateway_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/vaulttest"
)

// rotationEnv is a vault, the gateway's managed identity (granted get on
// the vault's secrets, assigned to the gateway's host, whose identity
// agent runs in the test and is in this process's environment), a CA for
// the certificates imported into the vault, and a backend.
type rotationEnv struct {
	t    testing.TB
	v    *vaulttest.Vault
	id   *vaulttest.Identity
	ca   *gwtest.CA
	pool []*gwtest.Backend
}

var hostCounter atomic.Int32

func newRotationEnv(t testing.TB, opts vaulttest.Options) *rotationEnv {
	t.Helper()
	e := &rotationEnv{t: t, v: vaulttest.StartWith(t, opts), ca: gwtest.NewCA(t, "CA")}
	host := fmt.Sprintf("gateway-host-%d", hostCounter.Add(1))
	e.id = e.v.StartIdentity("gateway", host, map[string][]string{"secrets": {"get"}})
	vaulttest.UseAgent(t, e.id.Agent)
	e.pool = gwtest.StartPool(t, "app", 1, nil)
	return e
}

// doc is a gateway with one HTTPS listener, site, for host, serving the
// vault certificate at secretID (a path under the vault's URL, such as
// /secrets/site), with extra settings appended.
func (e *rotationEnv) doc(host, secretPath, extra string) string {
	return yamlf(`
name: rotation
identity: {clientId: %s}
keyVault: {trustedCaFile: %s}
admin: {address: "127.0.0.1:0"}
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: https, port: %d}]
sslCertificates: [{name: site, keyVaultSecretId: "%s%s"}]
httpListeners: [{name: site, frontendPort: https, protocol: Https, hostName: %s, sslCertificate: site}]
backendAddressPools: [{name: app, backendAddresses: [{ipAddress: %s}]}]
backendHttpSettingsCollection: [{name: app, port: %d, protocol: Http}]
requestRoutingRules: [{name: site, ruleType: Basic, httpListener: site, backendAddressPool: app, backendHttpSettings: app}]
%s
`, e.id.ClientID, e.v.CAFile, gwtest.FreePort(e.t, "127.0.0.1"), e.v.URL, secretPath, host,
		e.pool[0].IP, e.pool[0].Port, extra)
}

// importCert imports leaf as a new version of the vault certificate
// name, through azcertificates, and returns the version.
func (e *rotationEnv) importCert(name string, leaf *gwtest.Leaf) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := e.v.Certificates.ImportCertificate(ctx, name, azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: to.Ptr(leaf.PEM(e.t)),
	}, nil)
	if err != nil {
		e.t.Fatalf("importing %s: %v", name, err)
	}
	return r.ID.Version()
}

// servedSerial dials the gateway's listener with SNI host and returns the
// serial (hex) of the certificate served, or the handshake's error.
func servedSerial(addr, host string) (string, error) {
	cs, err := handshake(addr, host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return "", err
	}
	return cs.PeerCertificates[0].SerialNumber.Text(16), nil
}

// waitServed waits until new handshakes present serial.
func waitServed(t testing.TB, gw *testGateway, host, serial string) {
	t.Helper()
	eventually(t, "new handshakes to present serial "+serial, func() bool {
		got, err := servedSerial(gw.Addr("site"), host)
		return err == nil && got == serial
	})
}

// certStatus returns the status of the gateway's certificate site.
func certStatus(gw *testGateway) certs.Status {
	for _, c := range gw.Status().Certificates {
		if c.Name == "site" {
			return c
		}
	}
	return certs.Status{}
}

// waitCondition waits until the certificate site is in condition code.
func waitCondition(t *testing.T, gw *testGateway, code certs.Code) certs.Status {
	t.Helper()
	var st certs.Status
	eventually(t, "condition "+string(code), func() bool {
		st = certStatus(gw)
		return st.Condition == code
	})
	return st
}

// load sends requests through a listener from clients that keep their
// connection alive and from clients that open a new one for every
// request, until stopped, and counts failures.
type load struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	ok      atomic.Int64
	failed  atomic.Int64
	mu      sync.Mutex
	errs    []string
	serials map[string]map[string]bool // by client: serials its connections presented
	counts  []atomic.Int64             // by client: requests answered
}

// startLoad starts kept keep-alive clients and fresh new-connection ones
// against the listener at addr for host. Each stops by itself after a
// minute or 20000 requests, whichever comes first.
func startLoad(t *testing.T, addr, host string, kept, fresh int) *load {
	t.Helper()
	l := &load{stop: make(chan struct{}), serials: map[string]map[string]bool{},
		counts: make([]atomic.Int64, kept+fresh)}
	names := make([]string, kept+fresh)
	for i := range names {
		names[i] = fmt.Sprintf("kept-%d", i)
		if i >= kept {
			names[i] = fmt.Sprintf("fresh-%d", i-kept)
		}
		// Every client's entry before any client runs: the clients
		// write into the map under l.mu, and a new key would race.
		l.serials[names[i]] = map[string]bool{}
	}
	for i, name := range names {
		c := loadClient(addr, i >= kept)
		l.wg.Go(func() { l.run(c, name, host, &l.counts[i]) })
	}
	// Every kept-alive client has its connection before anything rotates.
	eventually(t, "every load client to get an answer", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, s := range l.serials {
			if len(s) == 0 {
				return false
			}
		}
		return true
	})
	t.Cleanup(l.finish)
	return l
}

func loadClient(addr string, fresh bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives:   fresh,
		MaxIdleConnsPerHost: 1,
	}}
}

func (l *load) run(c *http.Client, name, host string, count *atomic.Int64) {
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(time.Minute)
	for n := 0; n < 20000 && time.Now().Before(deadline); n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		serial, err := l.request(c, host)
		l.mu.Lock()
		if err != nil {
			l.failed.Add(1)
			l.errs = append(l.errs, name+": "+err.Error())
		} else {
			l.ok.Add(1)
			count.Add(1)
			l.serials[name][serial] = true
		}
		l.mu.Unlock()
	}
}

func (l *load) request(c *http.Client, host string) (string, error) {
	resp, err := c.Get("https://" + host + "/load")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.Text(16), nil
}

// finish stops the load and waits for it; safe to call twice.
func (l *load) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// check lets every client make a few more requests, stops the load and
// fails the test on any failed request. It checks that kept-alive
// connections kept the serial they started with (old) and that new
// connections presented new by the end.
func (l *load) check(t *testing.T, old, new string) {
	t.Helper()
	for i := range l.counts {
		from := l.counts[i].Load()
		eventually(t, "every load client to make more requests", func() bool { return l.counts[i].Load() >= from+3 })
	}
	l.finish()
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed during the rotation; first: %v", n, n+l.ok.Load(), l.errs[:min(len(l.errs), 3)])
	}
	for name, serials := range l.serials {
		if strings.HasPrefix(name, "kept") && (len(serials) != 1 || !serials[old]) {
			t.Errorf("%s: kept-alive connection presented %v, want only the old serial %s", name, serials, old)
		}
		if strings.HasPrefix(name, "fresh") && !serials[new] {
			t.Errorf("%s: new connections presented %v, never the new serial %s", name, serials, new)
		}
	}
}

// adminPost posts to the gateway's admin listener and decodes the answer.
func adminPost(t *testing.T, gw *testGateway, path string) (int, gateway.RefreshResponse) {
	t.Helper()
	resp, err := http.Post("http://"+gw.AdminAddr()+path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out gateway.RefreshResponse
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// countLogs counts the log lines with msg whose attributes include all
// of attrs. A line that status already reflects may be still on its way
// (the gateway records a condition, then logs it), so countLogs waits up
// to five seconds for a first one.
func countLogs(gw *testGateway, msg string, attrs map[string]any) int {
	for range 100 {
		if n := countLogsNow(gw, msg, attrs); n > 0 {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0
}

// countLogsNow is countLogs without the wait.
func countLogsNow(gw *testGateway, msg string, attrs map[string]any) int {
	n := 0
	for _, line := range strings.Split(gw.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
			continue
		}
		match := true
		for k, v := range attrs {
			if fmt.Sprint(rec[k]) != fmt.Sprint(v) {
				match = false
			}
		}
		if match {
			n++
		}
	}
	return n
}
