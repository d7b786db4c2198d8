// Package issuer signs the certificates the vault makes, for each kind of
// issuer a Key Vault certificate policy can name: Self (self-signed),
// Unknown (an outside CA signs the vault's CSR and the result is merged),
// and keygate-ca, a private CA of root and intermediate that the vault
// keeps sealed in its store.
//
// The package holds no state and does no I/O: the vault loads and stores
// the CA's material and hands it in.
package issuer

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/pki"
)

// Reserved issuer names of a certificate policy, and the provider of
// keygate's private CA.
const (
	Self       = "Self"
	Unknown    = "Unknown"
	ProviderCA = "keygate-ca"
)

// ErrNeedsMerge is returned by Issue for the Unknown issuer: the vault
// cannot sign, an outside CA must, and the result is merged.
var ErrNeedsMerge = errors.New("the certificate must be signed outside the vault and merged")

// Issuer signs certificates of one kind.
type Issuer interface {
	// Issue signs template for key and returns the certificate chain,
	// leaf first, without the root of a CA.
	Issue(template *x509.Certificate, key crypto.Signer) ([]*x509.Certificate, error)

	// CanRenew reports whether the vault can renew by itself the
	// certificates this issuer signed.
	CanRenew() bool
}

// Reserved returns the issuer a reserved name stands for (Self or
// Unknown, in any case), or nil when name is not reserved.
func Reserved(name string) Issuer {
	switch {
	case strings.EqualFold(name, Self):
		return SelfSigned{}
	case strings.EqualFold(name, Unknown):
		return External{}
	}
	return nil
}

// CanonicalName returns Self or Unknown in Key Vault's spelling for a
// reserved name given in any case, and name unchanged otherwise.
func CanonicalName(name string) string {
	switch {
	case strings.EqualFold(name, Self):
		return Self
	case strings.EqualFold(name, Unknown):
		return Unknown
	}
	return name
}

// SelfSigned signs each certificate with its own key.
type SelfSigned struct{}

// Issue implements Issuer.
func (SelfSigned) Issue(template *x509.Certificate, key crypto.Signer) ([]*x509.Certificate, error) {
	c, err := pki.SelfSign(template, key)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{c}, nil
}

// CanRenew implements Issuer: a self-signed certificate renews itself.
func (SelfSigned) CanRenew() bool { return true }

// External is the Unknown issuer: someone outside signs.
type External struct{}

// Issue implements Issuer; it always returns ErrNeedsMerge.
func (External) Issue(*x509.Certificate, crypto.Signer) ([]*x509.Certificate, error) {
	return nil, ErrNeedsMerge
}

// CanRenew implements Issuer: the vault cannot renew what it did not sign.
func (External) CanRenew() bool { return false }

// Merge checks a chain an outside CA returned for a pending request
// against the request's key and returns it leaf first. The leaf is the
// certificate of key; the error names what does not fit.
func Merge(key crypto.Signer, ders [][]byte) ([]*x509.Certificate, error) {
	if len(ders) == 0 {
		return nil, errors.New("no certificate given")
	}
	certs, err := pki.ParseDERChain(ders)
	if err != nil {
		return nil, err
	}
	b, err := pki.Assemble(key, certs)
	if err != nil {
		return nil, errors.New("no certificate given matches the key of the pending request (its CSR)")
	}
	return b.Certs, nil
}

// CA is keygate's private certificate authority: a root that signs only
// its intermediate, and the intermediate that signs the certificates.
type CA struct {
	Root         *pki.CA
	Intermediate *pki.CA
}

// intermediateValidity is the lifetime of a new CA's intermediate; the
// root (pki.NewCA) lives ten years, and the intermediate never outlives it.
const intermediateValidity = 10 * 365 * 24 * time.Hour

// NewCA makes a root and an intermediate for the issuer called name.
func NewCA(name string, now time.Time) (*CA, error) {
	root, err := pki.NewCA("keygate-ca "+name+" root", now)
	if err != nil {
		return nil, err
	}
	inter, err := root.NewIntermediate("keygate-ca "+name+" intermediate", now, intermediateValidity)
	if err != nil {
		return nil, err
	}
	return &CA{Root: root, Intermediate: inter}, nil
}

// Issue implements Issuer: the intermediate signs. The chain returned is
// the leaf and the intermediate; clients trust the root (Chain).
func (c *CA) Issue(template *x509.Certificate, key crypto.Signer) ([]*x509.Certificate, error) {
	leaf, err := c.Intermediate.Sign(template, key.Public())
	if err != nil {
		return nil, fmt.Errorf("issuing from keygate-ca: %w", err)
	}
	return []*x509.Certificate{leaf, c.Intermediate.Cert}, nil
}

// CanRenew implements Issuer.
func (c *CA) CanRenew() bool { return true }

// Chain is the CA's chain, intermediate then root, for clients to trust.
func (c *CA) Chain() []*x509.Certificate {
	return []*x509.Certificate{c.Intermediate.Cert, c.Root.Cert}
}

// Material is a CA in the form the vault stores it: certificates in DER
// and keys in PKCS#8 DER, which the vault seals before storing.
type Material struct {
	RootCert, RootKey                 []byte
	IntermediateCert, IntermediateKey []byte
}

// Material returns c's certificates and keys for storing. The caller must
// protect the keys.
func (c *CA) Material() (Material, error) {
	rk, err := c.Root.KeyDER()
	if err != nil {
		return Material{}, fmt.Errorf("encoding root key: %w", err)
	}
	ik, err := c.Intermediate.KeyDER()
	if err != nil {
		return Material{}, fmt.Errorf("encoding intermediate key: %w", err)
	}
	return Material{RootCert: c.Root.Cert.Raw, RootKey: rk, IntermediateCert: c.Intermediate.Cert.Raw, IntermediateKey: ik}, nil
}

// ParseCA reads a CA back from its stored material.
func ParseCA(m Material) (*CA, error) {
	root, err := pki.ParseCA(m.RootCert, m.RootKey)
	if err != nil {
		return nil, fmt.Errorf("reading keygate-ca root: %w", err)
	}
	inter, err := pki.ParseCA(m.IntermediateCert, m.IntermediateKey)
	if err != nil {
		return nil, fmt.Errorf("reading keygate-ca intermediate: %w", err)
	}
	return &CA{Root: root, Intermediate: inter}, nil
}
