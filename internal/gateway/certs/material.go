// Package certs holds the gateway's certificates: it decodes them from
// inline PFX data and from vault secrets (PFX or PEM, as Key Vault stores a
// certificate's secret), and keeps each one in a Slot that TLS handshakes
// read and a loader replaces atomically.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// Content types of a certificate's secret in Key Vault.
const (
	ContentTypePKCS12 = "application/x-pkcs12"
	ContentTypePEM    = "application/x-pem-file"
)

// ErrNoKey is returned for certificate data that holds no private key.
var ErrNoKey = errors.New("no private key in it")

// ErrKeyMismatch is returned when the private key is not the
// certificate's.
var ErrKeyMismatch = errors.New("the private key does not match the certificate")

// Material is one version of a certificate: for a listener, a key pair
// with its chain; for a trusted root, only certificates. It is immutable
// once made, so handshakes may share it.
type Material struct {
	// KeyPair is the leaf, its chain and its key; nil for roots.
	KeyPair *tls.Certificate

	// Roots are the CA certificates of a trusted root; nil for a key pair.
	Roots []*x509.Certificate

	// Version is the vault secret's version; empty for inline data.
	Version string
}

// Leaf returns the certificate the material is named by: the key pair's
// leaf or the first root.
func (m *Material) Leaf() *x509.Certificate {
	if m.KeyPair != nil {
		return m.KeyPair.Leaf
	}
	if len(m.Roots) > 0 {
		return m.Roots[0]
	}
	return nil
}

// Thumbprint is the leaf's SHA-1 thumbprint in upper-case hex, as Azure
// shows certificates.
func (m *Material) Thumbprint() string {
	leaf := m.Leaf()
	if leaf == nil {
		return ""
	}
	sum := sha1.Sum(leaf.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// Serial is the leaf's serial number in hex.
func (m *Material) Serial() string {
	if leaf := m.Leaf(); leaf != nil {
		return leaf.SerialNumber.Text(16)
	}
	return ""
}

// NotAfter is when the leaf expires.
func (m *Material) NotAfter() time.Time {
	if leaf := m.Leaf(); leaf != nil {
		return leaf.NotAfter
	}
	return time.Time{}
}

// ParsePFX opens PKCS#12 data with password and returns its key pair.
// Errors never include the data or the password.
func ParsePFX(data []byte, password string) (*Material, error) {
	key, leaf, chain, err := pkcs12.DecodeChain(data, password)
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword):
		return nil, errors.New("opening PFX: the password is wrong")
	case err != nil && strings.Contains(err.Error(), "private key missing"):
		return nil, fmt.Errorf("opening PFX: %w", ErrNoKey)
	case err != nil:
		return nil, fmt.Errorf("opening PFX: %s", strings.TrimPrefix(err.Error(), "pkcs12: "))
	}

	// The library takes the first certificate as the leaf; tools that
	// write the chain root first exist, so find the key's own.
	m, err := matchKey(key, append([]*x509.Certificate{leaf}, chain...))
	if err != nil {
		return nil, fmt.Errorf("opening PFX: %w", err)
	}
	return m, nil
}

// ParsePEM reads PEM text holding a private key (PKCS#8, or PKCS#1 and
// SEC 1 for RSA and EC) and the certificate chain. The leaf is the
// certificate that matches the key; the others follow it in their order.
func ParsePEM(data []byte) (*Material, error) {
	var (
		key   crypto.PrivateKey
		certs []*x509.Certificate
	)
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("reading PEM: certificate %d does not parse: %w", len(certs)+1, err)
			}
			certs = append(certs, c)
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			if key != nil {
				return nil, errors.New("reading PEM: more than one private key")
			}
			k, err := parseKey(block)
			if err != nil {
				return nil, err
			}
			key = k
		}
	}
	switch {
	case len(certs) == 0:
		return nil, errors.New("reading PEM: no certificate in it")
	case key == nil:
		return nil, fmt.Errorf("reading PEM: %w", ErrNoKey)
	}

	// Key Vault writes the leaf first, but a chain pasted by hand may not.
	m, err := matchKey(key, certs)
	if err != nil {
		return nil, fmt.Errorf("reading PEM: %w", err)
	}
	return m, nil
}

func parseKey(block *pem.Block) (crypto.PrivateKey, error) {
	// Legacy PEM encryption shows as a DEK-Info header.
	if block.Headers["DEK-Info"] != "" || block.Type == "ENCRYPTED PRIVATE KEY" {
		return nil, errors.New("reading PEM: the private key is encrypted; Key Vault's PEM holds it unencrypted")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, errors.New("reading PEM: the private key is not PKCS#8, PKCS#1 or SEC 1")
}

// matchKey makes a key pair of key, the certificate among certs that it
// belongs to, and the others as the chain in their order.
func matchKey(key crypto.PrivateKey, certs []*x509.Certificate) (*Material, error) {
	for i, leaf := range certs {
		if !publicKeyMatches(leaf, key) {
			continue
		}
		kp := &tls.Certificate{PrivateKey: key, Leaf: leaf, Certificate: [][]byte{leaf.Raw}}
		for j, c := range certs {
			if j != i {
				kp.Certificate = append(kp.Certificate, c.Raw)
			}
		}
		return &Material{KeyPair: kp}, nil
	}
	return nil, ErrKeyMismatch
}

func publicKeyMatches(c *x509.Certificate, key crypto.PrivateKey) bool {
	signer, ok := key.(crypto.Signer)
	if !ok {
		return false
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := signer.Public().(equaler)
	if !ok {
		return false
	}
	switch c.PublicKey.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return pub.Equal(c.PublicKey)
	}
	return false
}

// ParseSecret decodes the value of a vault secret that holds a
// certificate with its key: base64 PFX with an empty password for
// ContentTypePKCS12, PEM text for ContentTypePEM. Another or no content
// type is judged by the value itself.
func ParseSecret(contentType, value string) (*Material, error) {
	ct, _, _ := strings.Cut(contentType, ";")
	switch strings.TrimSpace(strings.ToLower(ct)) {
	case ContentTypePKCS12:
		return parseBase64PFX(value)
	case ContentTypePEM:
		return ParsePEM([]byte(value))
	}
	if looksLikePEM(value) {
		return ParsePEM([]byte(value))
	}
	return parseBase64PFX(value)
}

func parseBase64PFX(value string) (*Material, error) {
	der, err := DecodeBase64(value)
	if err != nil {
		return nil, errors.New("opening PFX: the value is not base64")
	}
	return ParsePFX(der, "")
}

// ParseRoots reads CA certificates given as PEM, as base64 DER (a .cer
// file's content as Azure takes it in trustedRootCertificates.data), or as
// base64 PFX holding certificates only.
func ParseRoots(value string) ([]*x509.Certificate, error) {
	if looksLikePEM(value) {
		var out []*x509.Certificate
		for rest := []byte(value); ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("reading certificate: %w", err)
			}
			out = append(out, c)
		}
		if len(out) == 0 {
			return nil, errors.New("reading certificate: no certificate in the PEM text")
		}
		return out, nil
	}
	der, err := DecodeBase64(value)
	if err != nil {
		return nil, errors.New("reading certificate: neither PEM nor base64")
	}
	if looksLikePEM(string(der)) {
		return ParseRoots(string(der))
	}
	if certs, err := x509.ParseCertificates(der); err == nil && len(certs) > 0 {
		return certs, nil
	}
	if certs, err := pkcs12.DecodeTrustStore(der, ""); err == nil && len(certs) > 0 {
		return certs, nil
	}
	return nil, errors.New("reading certificate: not a DER certificate, PEM or PFX")
}

// DecodeBase64 decodes standard base64, padded or not, ignoring line
// breaks and spaces as pasted data has them.
func DecodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

func looksLikePEM(s string) bool {
	return bytes.Contains([]byte(s), []byte("-----BEGIN "))
}
