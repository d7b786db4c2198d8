// Package certcache keeps the gateway's last good vault certificates on
// disk, sealed with a key from the host, so that a gateway restarted while
// its vault cannot be reached serves what it served before.
//
// Each certificate is one file in the cache folder, written after each
// version the gateway installs: its key (PKCS#8) and chain as PEM, with
// the vault's version, sealed by internal/seal (AES-256-GCM under a fresh
// data key wrapped by the cache key). The associated data binds the file
// to the certificate's name and source, so that a file copied or renamed
// to stand for another certificate does not open. The cache key never
// comes from the gateway's configuration file: whoever can read that file
// should not be able to open the cache.
package certcache

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/keygate/keygate/internal/atomicfile"
	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/seal"
)

// ErrMiss is returned by Load when the cache holds no copy.
var ErrMiss = errors.New("no cached copy")

// Cache is a folder of sealed certificates. It is safe for concurrent
// use by one process.
type Cache struct {
	dir    string
	sealer *seal.Sealer
}

// Open returns the cache in dir, creating the folder with mode 0700 when
// it does not exist, sealing with key.
func Open(dir string, key seal.Key) (*Cache, error) {
	sealer, err := seal.NewSealer(key)
	if err != nil {
		return nil, fmt.Errorf("opening the certificate cache: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening the certificate cache: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the certificate cache: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("opening the certificate cache: %s is not a folder", dir)
	}
	return &Cache{dir: dir, sealer: sealer}, nil
}

// Dir is the cache's folder.
func (c *Cache) Dir() string { return c.dir }

// entry is what a file holds once opened.
type entry struct {
	Version string    `json:"version"`
	Stored  time.Time `json:"stored"`
	PEM     []byte    `json:"pem"`
}

// Store writes m as the copy of the certificate called name (such as
// "sslCertificates/site"), read from source (its secret id). The file is
// replaced atomically: a reader sees the old copy or the new.
func (c *Cache) Store(name, source string, m *certs.Material, now time.Time) error {
	p, err := encodePEM(m)
	if err != nil {
		return fmt.Errorf("caching %s: %w", name, err)
	}
	plain, err := json.Marshal(entry{Version: m.Version, Stored: now.UTC(), PEM: p})
	if err != nil {
		return fmt.Errorf("caching %s: %w", name, err)
	}
	sealed, err := c.sealer.Seal(plain, aad(name, source))
	if err != nil {
		return fmt.Errorf("caching %s: %w", name, err)
	}
	if err := atomicfile.Write(c.path(name), sealed, 0o600); err != nil {
		return fmt.Errorf("caching %s: %w", name, err)
	}
	return nil
}

// Load returns the cached copy of the certificate called name from
// source, and when it was stored. A missing copy is ErrMiss; a copy
// sealed under another key, for another name or source, or altered, is
// an error that says so.
func (c *Cache) Load(name, source string) (*certs.Material, time.Time, error) {
	sealed, err := os.ReadFile(c.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, time.Time{}, ErrMiss
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("reading the cached copy of %s: %w", name, err)
	}
	plain, err := c.sealer.Open(sealed, aad(name, source))
	switch {
	case errors.Is(err, seal.ErrWrongKey):
		return nil, time.Time{}, fmt.Errorf("opening the cached copy of %s: it was sealed under another cache key", name)
	case err != nil:
		return nil, time.Time{}, fmt.Errorf("opening the cached copy of %s: altered, or sealed for another certificate or source", name)
	}
	var e entry
	if err := json.Unmarshal(plain, &e); err != nil {
		return nil, time.Time{}, fmt.Errorf("opening the cached copy of %s: not a cache entry", name)
	}
	m, err := decodePEM(e.PEM)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("opening the cached copy of %s: %w", name, err)
	}
	m.Version = e.Version
	return m, e.Stored, nil
}

// path is the file of name: its name escaped so that no name leaves the
// folder.
func (c *Cache) path(name string) string {
	return filepath.Join(c.dir, url.PathEscape(name)+".sealed")
}

func aad(name, source string) []byte {
	return []byte("keygate gateway certificate cache\x00" + name + "\x00" + source)
}

// encodePEM writes the key (PKCS#8) and the chain, leaf first, or the
// roots of a trusted root.
func encodePEM(m *certs.Material) ([]byte, error) {
	var buf bytes.Buffer
	if kp := m.KeyPair; kp != nil {
		der, err := x509.MarshalPKCS8PrivateKey(kp.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("encoding the key: %w", err)
		}
		pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
		for _, c := range kp.Certificate {
			pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c})
		}
		return buf.Bytes(), nil
	}
	for _, r := range m.Roots {
		pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})
	}
	return buf.Bytes(), nil
}

func decodePEM(p []byte) (*certs.Material, error) {
	if bytes.Contains(p, []byte("PRIVATE KEY")) {
		return certs.ParsePEM(p)
	}
	roots, err := certs.ParseRoots(string(p))
	if err != nil {
		return nil, err
	}
	return &certs.Material{Roots: roots}, nil
}
