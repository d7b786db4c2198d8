package certcache_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway/certcache"
	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/seal"
)

func newKey(t *testing.T) seal.Key {
	t.Helper()
	k, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const source = "https://127.0.0.1:8443/secrets/site"

func TestStoreLoad(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	leaf := ca.Issue(t, gwtest.ECDSA, "site.example.test")
	m, err := certs.ParseSecret(certs.ContentTypePKCS12, leaf.PFX(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	m.Version = "0123456789abcdef0123456789abcdef"
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := certcache.Open(dir, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache folder: %v, mode %v", err, fi.Mode())
	}
	if _, _, err := c.Load("sslCertificates/site", source); !errors.Is(err, certcache.ErrMiss) {
		t.Fatalf("Load before Store: %v, want ErrMiss", err)
	}

	now := time.Now()
	if err := c.Store("sslCertificates/site", source, m, now); err != nil {
		t.Fatal(err)
	}
	got, stored, err := c.Load("sslCertificates/site", source)
	if err != nil {
		t.Fatal(err)
	}
	if got.Serial() != m.Serial() || got.Version != m.Version || !stored.Equal(now) {
		t.Errorf("loaded serial %s version %s stored %v; want %s %s %v", got.Serial(), got.Version, stored, m.Serial(), m.Version, now)
	}
	if len(got.KeyPair.Certificate) != 2 || got.KeyPair.PrivateKey == nil {
		t.Errorf("loaded chain of %d with key %v", len(got.KeyPair.Certificate), got.KeyPair.PrivateKey != nil)
	}

	// The file holds nothing readable, and only its owner may read it.
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 {
		t.Fatalf("files in the cache: %v", files)
	}
	raw, _ := os.ReadFile(files[0])
	if bytes.Contains(raw, []byte("PRIVATE KEY")) || bytes.Contains(raw, leaf.Cert.Raw[:32]) || bytes.Contains(raw, []byte(m.Version)) {
		t.Error("the cache file holds plaintext")
	}
	if fi, _ := os.Stat(files[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %v, want 0600", fi.Mode().Perm())
	}
	if strings.Contains(files[0], "/site.") {
		t.Errorf("a name with a slash was not escaped: %s", files[0])
	}

	// Roots round-trip too.
	roots := &certs.Material{Roots: []*x509.Certificate{ca.Cert}}
	if err := c.Store("trustedRootCertificates/ca", source, roots, now); err != nil {
		t.Fatal(err)
	}
	if got, _, err := c.Load("trustedRootCertificates/ca", source); err != nil || len(got.Roots) != 1 || !got.Roots[0].Equal(ca.Cert) {
		t.Errorf("roots: %v", err)
	}
}

// TestLoadRefuses opens nothing sealed under another key, for another
// certificate or source, or altered.
func TestLoadRefuses(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	m, err := certs.ParseSecret(certs.ContentTypePEM, ca.Issue(t, gwtest.ECDSA, "a.test").PEM(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, _ := certcache.Open(dir, newKey(t))
	if err := c.Store("sslCertificates/a", source, m, time.Now()); err != nil {
		t.Fatal(err)
	}
	other, _ := certcache.Open(dir, newKey(t))
	if _, _, err := other.Load("sslCertificates/a", source); err == nil || !strings.Contains(err.Error(), "another cache key") {
		t.Errorf("another key: %v", err)
	}
	if _, _, err := c.Load("sslCertificates/a", source+"2"); err == nil || !strings.Contains(err.Error(), "another certificate or source") {
		t.Errorf("another source: %v", err)
	}

	// A file renamed to stand for another certificate.
	files, _ := filepath.Glob(filepath.Join(dir, "*.sealed"))
	raw, _ := os.ReadFile(files[0])
	os.WriteFile(filepath.Join(dir, "sslCertificates%2Fb.sealed"), raw, 0o600)
	if _, _, err := c.Load("sslCertificates/b", source); err == nil {
		t.Error("a copy renamed to another certificate opened")
	}

	// A flipped bit.
	raw[len(raw)-5] ^= 1
	os.WriteFile(files[0], raw, 0o600)
	if _, _, err := c.Load("sslCertificates/a", source); err == nil {
		t.Error("an altered copy opened")
	}
}

func TestOpenRefusesAFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "file")
	os.WriteFile(p, []byte("x"), 0o600)
	if _, err := certcache.Open(p, newKey(t)); err == nil {
		t.Error("Open of a file succeeded")
	}
	if _, err := certcache.Open(t.TempDir(), seal.Key{}); err == nil {
		t.Error("Open with no key succeeded")
	}
}
