package pki

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"software.sslmate.com/src/go-pkcs12"
)

// ErrWrongPassword is returned by DecodePFX when the password does not
// open the PFX.
var ErrWrongPassword = errors.New("the password does not open the PFX")

// Bundle is a certificate with its chain and, unless it is only the public
// half, its private key. Certs is ordered leaf first, each certificate
// followed by its issuer where the chain holds it. Bundle holds a private
// key: it redacts itself when formatted.
type Bundle struct {
	Key   crypto.Signer
	Certs []*x509.Certificate
}

// Leaf is the end-entity certificate, or nil for an empty bundle.
func (b *Bundle) Leaf() *x509.Certificate {
	if len(b.Certs) == 0 {
		return nil
	}
	return b.Certs[0]
}

// String names the leaf and hides the key.
func (b *Bundle) String() string {
	if leaf := b.Leaf(); leaf != nil {
		return "bundle " + leaf.Subject.String() + " (key redacted)"
	}
	return "empty bundle"
}

// Thumbprint is the SHA-1 digest of a certificate's DER, Key Vault's x5t.
func Thumbprint(cert *x509.Certificate) []byte {
	sum := sha1.Sum(cert.Raw)
	return sum[:]
}

// DecodePFX reads a PKCS#12 file in any of the encodings in use (AES with
// PBKDF2, 3DES, RC2, or none), with password ("" for none). The bundle it
// returns holds the key and every certificate, leaf first. Errors name what
// is wrong and never quote the input.
func DecodePFX(data []byte, password string) (*Bundle, error) {
	key, leaf, cas, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		return nil, pfxError(err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("the PFX holds a private key that cannot sign")
	}
	return Assemble(signer, append([]*x509.Certificate{leaf}, cas...))
}

func pfxError(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword), errors.Is(err, pkcs12.ErrDecryption):
		return ErrWrongPassword
	case strings.Contains(msg, "private key missing"):
		return errors.New("the PFX holds no private key")
	case strings.Contains(msg, "certificate missing"):
		return errors.New("the PFX holds no certificate")
	case strings.Contains(msg, "expected exactly one key bag"):
		return errors.New("the PFX holds more than one private key")
	}
	var nie pkcs12.NotImplementedError
	if errors.As(err, &nie) {
		return errors.New("the PFX uses an encoding keygate does not read")
	}
	return errors.New("not a PKCS#12 (PFX) file, or damaged")
}

// DecodePEM reads PEM text holding one private key (PKCS#8, PKCS#1 RSA or
// SEC 1 EC, unencrypted) and certificates in any order. The bundle it
// returns holds the certificate of that key first, then its chain.
func DecodePEM(text []byte) (*Bundle, error) {
	var (
		key   crypto.Signer
		certs []*x509.Certificate
	)
	rest := bytes.TrimSpace(text)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("malformed PEM: text outside BEGIN/END blocks, or a damaged block")
		}
		rest = bytes.TrimSpace(rest)
		switch block.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("certificate %d of the PEM does not parse", len(certs)+1)
			}
			certs = append(certs, c)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if key != nil {
				return nil, errors.New("the PEM holds more than one private key")
			}
			k, err := parsePrivateKey(block)
			if err != nil {
				return nil, err
			}
			key = k
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the PEM's private key is encrypted; give it unencrypted (openssl pkcs8 -nocrypt), or import a PFX with its password")
		default:
			return nil, fmt.Errorf("the PEM holds a %q block, which is neither a certificate nor a private key", block.Type)
		}
	}
	if key == nil {
		return nil, errors.New("the PEM holds no private key")
	}
	if len(certs) == 0 {
		return nil, errors.New("the PEM holds no certificate")
	}
	return Assemble(key, certs)
}

func parsePrivateKey(block *pem.Block) (crypto.Signer, error) {
	var (
		k   any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("the PEM's %s block does not parse", strings.ToLower(block.Type))
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("the PEM's private key cannot sign")
	}
	return s, nil
}

// Assemble orders certs as a chain that starts with the certificate of key
// and checks that key belongs to it. key may be nil for a bundle of public
// certificates, whose first element is then taken as the leaf.
func Assemble(key crypto.Signer, certs []*x509.Certificate) (*Bundle, error) {
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	leaf := 0
	if key != nil {
		leaf = -1
		for i, c := range certs {
			if KeyMatches(c.PublicKey, key) {
				leaf = i
				break
			}
		}
		if leaf < 0 {
			return nil, errors.New("the private key does not match any of the certificates")
		}
	}
	return &Bundle{Key: key, Certs: OrderChain(certs[leaf], certs)}, nil
}

// OrderChain returns leaf followed by its issuers found among certs, in
// order, then any certificates of certs not on that path, in the order
// given. Duplicates are dropped.
func OrderChain(leaf *x509.Certificate, certs []*x509.Certificate) []*x509.Certificate {
	out := []*x509.Certificate{leaf}
	used := map[string]bool{string(leaf.Raw): true}
	for cur := leaf; ; {
		next := findIssuer(cur, certs, used)
		if next == nil {
			break
		}
		out = append(out, next)
		used[string(next.Raw)] = true
		cur = next
	}
	for _, c := range certs {
		if !used[string(c.Raw)] {
			out = append(out, c)
			used[string(c.Raw)] = true
		}
	}
	return out
}

func findIssuer(c *x509.Certificate, certs []*x509.Certificate, used map[string]bool) *x509.Certificate {
	if bytes.Equal(c.RawIssuer, c.RawSubject) {
		return nil // self-signed: the chain ends here
	}
	for _, cand := range certs {
		if used[string(cand.Raw)] || !bytes.Equal(cand.RawSubject, c.RawIssuer) {
			continue
		}
		if c.CheckSignatureFrom(cand) == nil {
			return cand
		}
	}
	return nil
}

// EncodePFX encodes the bundle as a PKCS#12 file with an empty password,
// as Key Vault serves a certificate's secret: AES-256 with PBKDF2 and an
// HMAC-SHA-256 MAC, which OpenSSL 1.1.1 and later, Node and Windows open
// (RC2, which OpenSSL 3 refuses, is never used). A bundle without a key
// encodes its certificates only.
func (b *Bundle) EncodePFX() ([]byte, error) {
	if len(b.Certs) == 0 {
		return nil, errors.New("encoding PFX: no certificate")
	}
	if b.Key == nil {
		out, err := pkcs12.Modern2023.EncodeTrustStore(b.Certs, "")
		if err != nil {
			return nil, fmt.Errorf("encoding PFX: %w", err)
		}
		return out, nil
	}
	out, err := pkcs12.Modern2023.Encode(b.Key, b.Certs[0], b.Certs[1:], "")
	if err != nil {
		return nil, fmt.Errorf("encoding PFX: %w", err)
	}
	return out, nil
}

// EncodePEM encodes the bundle as PEM: the private key as unencrypted
// PKCS#8 (when the bundle has one), then the certificates, leaf first.
func (b *Bundle) EncodePEM() ([]byte, error) {
	var buf bytes.Buffer
	if b.Key != nil {
		der, err := x509.MarshalPKCS8PrivateKey(b.Key)
		if err != nil {
			return nil, fmt.Errorf("encoding private key: %w", err)
		}
		pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for _, c := range b.Certs {
		pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes(), nil
}

// CertsPEM encodes certificates as PEM, in the order given.
func CertsPEM(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// ParseDERChain parses DER certificates, in the order given.
func ParseDERChain(ders [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(ders))
	for i, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse as DER X.509", i+1)
		}
		out = append(out, c)
	}
	return out, nil
}

// DecodePEMCerts reads every CERTIFICATE block of PEM text, in order.
func DecodePEMCerts(text []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, text = pem.Decode(text)
		if block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the PEM does not parse", len(out)+1)
		}
		out = append(out, c)
	}
}
