package gateway_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/config"
	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/seal"
	"github.com/keygate/keygate/internal/vaulttest"
)

// TestRestartWithVaultDown restarts a gateway while its vault is down:
// with the cache on it serves the certificate it served before; with the
// cache off, or sealed under another key, it does not, and says why. When
// the vault is back, the certificate is read from it again.
func TestRestartWithVaultDown(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{})
	leaf := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	e.importCert("site", leaf)
	dir := filepath.Join(t.TempDir(), "cache")
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	withCache := "certificateCache: {path: " + dir + "}\nkeyVaultPollInterval: 1s"
	opts := gateway.Options{CacheKey: key, MaxRetry: 500 * time.Millisecond}

	first := startGatewayWith(t, e.doc(siteHost, "/secrets/site", withCache), opts)
	waitServed(t, first, siteHost, leaf.Serial())
	// The worker caches a version just after it installs it.
	eventually(t, "one cache file", func() bool {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sealed"))
		return len(files) == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	e.v.Stop()

	// Cache on: the cached copy serves, and status says where it came from.
	again := startGatewayWith(t, e.doc(siteHost, "/secrets/site", withCache), opts)
	eventually(t, "the cached certificate to serve", again.Ready)
	if got, err := servedSerial(again.Addr("site"), siteHost); err != nil || got != leaf.Serial() {
		t.Errorf("restarted with the cache: served %s, %v", got, err)
	}
	st := certStatus(again)
	if !st.FromCache || st.Condition != certs.KeyVaultUnreachable || !strings.Contains(st.LastError, "serving the cached copy of version "+st.Version) {
		t.Errorf("status of a cached certificate: %+v", st)
	}

	// Cache off, or another key: nothing to serve, and readiness says why.
	for _, tc := range []struct {
		name, extra string
		opts        gateway.Options
		why         string
	}{
		{"cache off", "keyVaultPollInterval: 1s", gateway.Options{MaxRetry: 500 * time.Millisecond}, "the certificate cache is off"},
		{"another key", withCache, gateway.Options{CacheKey: mustKey(t), MaxRetry: 500 * time.Millisecond}, "sealed under another cache key"},
	} {
		gw := startGatewayWith(t, e.doc(siteHost, "/secrets/site", tc.extra), tc.opts)
		eventually(t, tc.name+": the reason to be reported", func() bool {
			code, body := readyz(t, gw)
			return code == http.StatusServiceUnavailable && strings.Contains(body, tc.why)
		})
		if _, err := servedSerial(gw.Addr("site"), siteHost); err == nil {
			t.Errorf("%s: a handshake succeeded with nothing to serve", tc.name)
		}
	}

	// The vault is back: the certificate is read from it again.
	e.v.Restart()
	eventually(t, "a read from the vault", func() bool {
		st := certStatus(again)
		return st.Condition == certs.OK && !st.FromCache
	})
}

func mustKey(t *testing.T) seal.Key {
	t.Helper()
	k, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCacheNeedsKey refuses to start a gateway whose configuration turns
// the cache on when no key was given, and one whose cache path is not a
// folder.
func TestCacheNeedsKey(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{})
	for _, tc := range []struct {
		path string
		key  seal.Key
		want string
	}{
		{t.TempDir(), seal.Key{}, "KEYGATE_GATEWAY_CACHE_KEY"},
		{writeTemp(t), mustKey(t), "certificateCache.path"},
	} {
		cfg, err := config.Parse([]byte(e.doc(siteHost, "/secrets/site", "certificateCache: {path: "+filepath.Dir(tc.path)+"/x}")))
		if err != nil {
			t.Fatal(err)
		}
		cfg.CertificateCache.Path = tc.path
		g := gateway.New(cfg, gateway.Options{CacheKey: tc.key})
		if err := g.Start(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start with cache %s: %v, want an error naming %s", tc.path, err, tc.want)
			g.Shutdown(context.Background())
		}
	}
}

func writeTemp(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
