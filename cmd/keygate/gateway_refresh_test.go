package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/vaulttest"
)

// TestGatewayRefreshCommand runs `keygate gateway run` with a vault
// certificate and the cache on (its key from --cache-key-file), and
// drives `keygate gateway refresh` against it: unchanged, rotated, a
// certificate it cannot use, an unknown name.
func TestGatewayRefreshCommand(t *testing.T) {
	v := vaulttest.Start(t, nil)
	ca := gwtest.NewCA(t, "CA")
	v.SetSecret("site", ca.Issue(t, gwtest.ECDSA, "site.example.test").PEM(t), certs.ContentTypePEM)
	be := gwtest.StartPool(t, "app", 1, nil)[0]
	admin := fmt.Sprintf("127.0.0.1:%d", gwtest.FreePort(t, "127.0.0.1"))
	keyFile := filepath.Join(t.TempDir(), "cache.key")
	mustRun(t, "gateway", "cache-key", "--file", keyFile)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	doc := fmt.Sprintf(`
name: cli
admin: {address: "%s"}
accessLog: {path: off}
certificateCache: {path: %s}
keyVault:
  trustedCaFile: %s
  credential: {type: ClientSecret, tenantId: %s, clientId: %s, authorityHost: "%s", clientSecretFile: %s}
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: https, port: %d}]
sslCertificates: [{name: site, keyVaultSecretId: "%s/secrets/site"}]
httpListeners: [{name: site, frontendPort: https, protocol: Https, hostName: site.example.test, sslCertificate: site}]
backendAddressPools: [{name: app, backendAddresses: [{ipAddress: %s}]}]
backendHttpSettingsCollection: [{name: app, port: %d, protocol: Http}]
requestRoutingRules: [{name: site, ruleType: Basic, httpListener: site, backendAddressPool: app, backendHttpSettings: app}]
`, admin, cacheDir, v.CAFile, v.Admin.TenantID, v.Admin.ClientID, v.Admin.AuthorityHost, v.WriteClientSecret(),
		gwtest.FreePort(t, "127.0.0.1"), v.URL, be.IP, be.Port)
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, "gateway", "validate", "--config", path); !strings.Contains(out,
		"vault certificates read every 4h0m0s, onKeyVaultError KeepLastGood, certificate cache "+cacheDir) {
		t.Errorf("validate printed %q", out)
	}
	startGatewayCommand(t, "--config", path, "--cache-key-file", keyFile)
	waitAdminReady(t, admin)

	out := mustRun(t, "gateway", "refresh", "--admin", admin)
	if !strings.Contains(out, "sslCertificates/site: version ") || !strings.Contains(out, " unchanged") {
		t.Errorf("refresh with nothing new printed %q", out)
	}
	if files, _ := filepath.Glob(filepath.Join(cacheDir, "*.sealed")); len(files) != 1 {
		t.Errorf("cache files %v: the key from --cache-key-file was not used", files)
	}

	next := ca.Issue(t, gwtest.ECDSA, "site.example.test")
	version := v.SetSecret("site", next.PEM(t), certs.ContentTypePEM)
	// The vault's push may have rotated it first: then the refresh finds
	// it unchanged.
	out = mustRun(t, "gateway", "refresh", "--admin", "http://"+admin, "--certificate", "site")
	want := "sslCertificates/site: version " + version + " (serial " + next.Serial() + ") "
	if !strings.Contains(out, want+"rotated") && !strings.Contains(out, want+"unchanged") {
		t.Errorf("refresh after a new version printed %q, want %q", out, want+"rotated")
	}

	v.SetSecret("site", next.CertOnlyPEM(), certs.ContentTypePEM)
	out, err := run(t, "gateway", "refresh", "--admin", admin)
	if err == nil || !strings.Contains(err.Error(), "1 certificate could not be refreshed") ||
		!strings.Contains(out, "CertificateUnusable") || !strings.Contains(out, "in use: version "+version) {
		t.Errorf("refresh of an unusable version: %v\n%s", err, out)
	}

	if _, err := run(t, "gateway", "refresh", "--admin", admin, "--certificate", "nope"); err == nil ||
		!strings.Contains(err.Error(), `named "nope"`) {
		t.Errorf("refresh of an unknown certificate: %v", err)
	}
	if _, err := run(t, "gateway", "refresh", "--admin", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("refresh of no gateway: %v", err)
	}
}

// TestGatewayCacheKey creates a key file once, keeps it on a second run,
// and refuses a key file others may read and a malformed key variable.
func TestGatewayCacheKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cache.key")
	if out := mustRun(t, "gateway", "cache-key", "--file", file); !strings.Contains(out, "created") {
		t.Errorf("first run printed %q", out)
	}
	before, _ := os.ReadFile(file)
	if out := mustRun(t, "gateway", "cache-key", "--file", file); !strings.Contains(out, "exists") {
		t.Errorf("second run printed %q", out)
	}
	after, _ := os.ReadFile(file)
	if fi, _ := os.Stat(file); !bytes.Equal(before, after) || fi.Mode().Perm() != 0o600 {
		t.Errorf("the key file changed, or has mode %v", fi.Mode().Perm())
	}
	if strings.Contains(mustRun(t, "gateway", "cache-key", "--file", file), strings.TrimSpace(string(after))) {
		t.Error("cache-key printed the key")
	}

	os.Chmod(file, 0o644)
	if _, err := cacheKey(file); err == nil || !strings.Contains(err.Error(), "--cache-key-file") {
		t.Errorf("a key file others may read: %v", err)
	}
	t.Setenv(CacheKeyEnv, "not a key")
	if _, err := cacheKey(""); err == nil || !strings.Contains(err.Error(), CacheKeyEnv) {
		t.Errorf("a malformed %s: %v", CacheKeyEnv, err)
	}
	t.Setenv(CacheKeyEnv, strings.TrimSpace(string(after)))
	if k, err := cacheKey(""); err != nil || k.ID() == "" {
		t.Errorf("the key from %s: %v", CacheKeyEnv, err)
	}
}

// startGatewayCommand runs `keygate gateway run` with args until the test
// ends.
func startGatewayCommand(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"gateway", "run", "--log-level", "error"}, args...))
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway run: %v\n%s", err, out.String())
			}
		case <-time.After(40 * time.Second):
			t.Error("gateway run did not stop")
		}
	})
}

// waitAdminReady waits until the gateway's admin listener says it is ready.
func waitAdminReady(t *testing.T, admin string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatal("the gateway did not become ready")
}
