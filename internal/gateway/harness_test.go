package gateway_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gateway/config"
	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/testkit"
)

// syncBuffer collects what a gateway writes, for tests to search.
type syncBuffer = testkit.Buffer

// testGateway is a started gateway with its logs.
type testGateway struct {
	*gateway.Gateway
	t      testing.TB
	logs   *syncBuffer
	access *syncBuffer

	// stopped is set once the test has shut the gateway down itself.
	stopped atomic.Bool
}

// Shutdown shuts the gateway down for a test that checks how.
func (tg *testGateway) Shutdown(ctx context.Context) error {
	tg.stopped.Store(true)
	return tg.Gateway.Shutdown(ctx)
}

// startGateway loads doc, starts a gateway from it and shuts it down when
// the test ends.
func startGateway(t *testing.T, doc string) *testGateway {
	t.Helper()
	return startGatewayWith(t, doc, gateway.Options{})
}

// startGatewayWith is startGateway with options; the logger and the
// access log are the test's.
func startGatewayWith(t testing.TB, doc string, opts gateway.Options) *testGateway {
	t.Helper()
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("configuration:\n%v\n%s", err, doc)
	}
	tg := &testGateway{t: t, logs: &syncBuffer{}, access: &syncBuffer{}}
	opts.Logger = slog.New(slog.NewJSONHandler(tg.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.AccessLog = tg.access
	tg.Gateway = gateway.New(cfg, opts)
	if err := tg.Start(context.Background()); err != nil {
		t.Fatalf("starting gateway: %v", err)
	}
	t.Cleanup(func() {
		if !tg.stopped.Load() {
			tg.shutdown()
		}
	})
	return tg
}

func (tg *testGateway) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tg.Gateway.Shutdown(ctx); err != nil {
		tg.t.Errorf("shutdown: %v", err)
	}
}

// client returns an HTTP client that sends every request to addr,
// whatever the URL's host, trusting roots, with HTTP/2 when h2.
func client(addr string, roots *x509.CertPool, h2 bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: h2,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get sends GET url through c and decodes a backend's echo, if any.
func get(t *testing.T, c *http.Client, url string) (*http.Response, gwtest.Echo) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e gwtest.Echo
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("GET %s: decoding %q: %v", url, body, err)
		}
	}
	return resp, e
}

// handshake dials addr with TLS, server name sni, and returns the state.
func handshake(addr, sni string, cfg *tls.Config) (tls.ConnectionState, error) {
	c := cfg.Clone()
	c.ServerName = sni
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: c}
	conn, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState(), nil
}

// eventually polls cond until it holds, failing the test after a bound
// generous enough for a loaded machine. It asserts an outcome, not a time.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// yamlf formats a configuration; %q-free so YAML stays readable.
func yamlf(format string, args ...any) string {
	return fmt.Sprintf(format, args...)
}
