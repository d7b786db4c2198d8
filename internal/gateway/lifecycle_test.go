package gateway_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gateway/config"
	"github.com/keygate/keygate/internal/gateway/gwtest"
)

// TestGracefulShutdown starts slow requests over HTTP/1.1 and HTTP/2,
// shuts the gateway down while they are in flight, and checks every one
// completes while new connections are refused.
func TestGracefulShutdown(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	leaf := ca.Issue(t, gwtest.ECDSA, "www.example.test")
	pool := gwtest.StartPool(t, "app", 1, nil)
	gw := startGateway(t, basicDoc(t, leaf, gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1"), pool, ""))

	const perClient = 8
	clients := []*http.Client{
		client(gw.Addr("site"), ca.Pool(), false),
		client(gw.Addr("site"), ca.Pool(), true),
		client(gw.Addr("plain"), nil, false),
	}
	urls := []string{"https://www.example.test/slow?d=1s", "https://www.example.test/slow?d=1s", "http://plain.test/slow?d=1s"}

	var wg sync.WaitGroup
	errs := make(chan error, perClient*len(clients))
	for i, c := range clients {
		for range perClient {
			wg.Go(func() {
				resp, err := c.Get(urls[i])
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				var e gwtest.Echo
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusOK {
					errs <- &net.OpError{Op: "read", Err: err}
				}
			})
		}
	}
	eventually(t, "every request to reach the backend", func() bool {
		return pool[0].InFlight() == perClient*int64(len(clients))
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- gw.Shutdown(ctx) }()

	// New connections are refused once the listeners close.
	eventually(t, "the listener to close", func() bool {
		conn, err := net.DialTimeout("tcp", gw.Addr("plain"), time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})

	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("in-flight request lost: %v", err)
	}
	if err := <-shutdownErr; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestShutdownDeadline cuts a request that outlasts the deadline and
// says so.
func TestShutdownDeadline(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	pool := gwtest.StartPool(t, "app", 1, nil)
	gw := startGateway(t, basicDoc(t, ca.Issue(t, gwtest.ECDSA, "www.example.test"),
		gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1"), pool, ""))
	go func() {
		resp, err := client(gw.Addr("plain"), nil, false).Get("http://plain.test/slow?d=30s")
		if err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, "the request to reach the backend", func() bool { return pool[0].InFlight() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := gw.Shutdown(ctx); err == nil {
		t.Error("Shutdown with a request past the deadline returned no error")
	}
}

// TestMetricsAndAccessLog checks the request, latency and handshake
// metrics and the access log's lines.
func TestMetricsAndAccessLog(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	leaf := ca.Issue(t, gwtest.ECDSA, "www.example.test")
	pool := gwtest.StartPool(t, "app", 1, nil)
	gw := startGateway(t, basicDoc(t, leaf, gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1"), pool, ""))

	c := client(gw.Addr("site"), ca.Pool(), true)
	for range 3 {
		req, _ := http.NewRequest("GET", "https://www.example.test/p?token=s3cret", nil)
		req.Header.Set("Cookie", "session=c00kie")
		req.Header.Set("Authorization", "Bearer t0ken")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// A handshake the default policy refuses.
	if _, err := handshake(gw.Addr("site"), "www.example.test", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11, InsecureSkipVerify: true}); err == nil {
		t.Fatal("TLS 1.1 accepted by the default policy")
	}

	m := scrape(t, gw.AdminAddr())
	for _, want := range []string{
		`keygate_gateway_requests_total{code="200",gateway="test",listener="site"} 3`,
		`keygate_gateway_request_duration_seconds_count{gateway="test",listener="site"} 3`,
		`keygate_gateway_tls_handshakes_total{gateway="test",listener="site",result="success",version="TLSv1_3"} 1`,
		`keygate_gateway_tls_handshakes_total{gateway="test",listener="site",result="failure",version="none"} 1`,
		`keygate_gateway_backend_health{address="` + pool[0].Addr() + `",gateway="test",pool="app",settings="app"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s\n%s", want, grepLines(m, "keygate_gateway_"))
		}
	}

	gw.shutdown() // flushes the access log
	lines := strings.Split(strings.TrimSpace(gw.access.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d access log lines, want 3:\n%s", len(lines), gw.access.String())
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"msg": "request", "listener": "site", "method": "GET", "host": "www.example.test",
		"path": "/p", "protocol": "HTTP/2.0", "tls_version": "TLSv1_3", "status": 200.0,
		"client_ip": "127.0.0.1", "rule": "site", "server": pool[0].Addr()}
	for k, v := range want {
		if entry[k] != v {
			t.Errorf("access log %s = %v, want %v", k, entry[k], v)
		}
	}
	if _, ok := entry["duration_ms"].(float64); !ok {
		t.Errorf("access log has no duration: %v", entry)
	}
	all := gw.access.String() + gw.logs.String()
	for _, secret := range []string{"s3cret", "c00kie", "t0ken"} {
		if strings.Contains(all, secret) {
			t.Errorf("logs hold %q from the request", secret)
		}
	}
}

// TestStartFailsCleanly binds a port that is taken: Start fails naming
// it, leaves nothing bound, and Shutdown after it is harmless.
func TestStartFailsCleanly(t *testing.T) {
	pool := gwtest.StartPool(t, "app", 1, nil)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free := gwtest.FreePort(t, "127.0.0.1")
	port := taken.Addr().(*net.TCPAddr).Port
	doc := poolDoc(free, pool, "", "[]")
	doc = strings.Replace(doc, "httpListeners: [{name: web, frontendPort: http, protocol: Http}]",
		"httpListeners: [{name: web, frontendPort: http, protocol: Http}, {name: web2, frontendPort: taken, protocol: Http}]", 1)
	doc = strings.Replace(doc, "frontendPorts: [{name: http, port: "+strconv.Itoa(free)+"}]",
		"frontendPorts: [{name: http, port: "+strconv.Itoa(free)+"}, {name: taken, port: "+strconv.Itoa(port)+"}]", 1)
	doc = strings.Replace(doc, "requestRoutingRules: [{name: web, ruleType: Basic, httpListener: web, backendAddressPool: app, backendHttpSettings: app}]",
		"requestRoutingRules: [{name: web, ruleType: Basic, httpListener: web, backendAddressPool: app, backendHttpSettings: app}, {name: web2, ruleType: Basic, httpListener: web2, backendAddressPool: app, backendHttpSettings: app}]", 1)
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	g := gateway.New(cfg, gateway.Options{})
	err = g.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(port)) || !strings.Contains(err.Error(), "web2") {
		t.Fatalf("Start with a taken port: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(free))
	if err != nil {
		t.Errorf("the port bound before the failure is still taken: %v", err)
	} else {
		ln.Close()
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown after a failed Start: %v", err)
	}
}
