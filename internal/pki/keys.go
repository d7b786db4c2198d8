package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
)

// Key types, as Key Vault names them in a certificate policy's key_props.
const (
	KeyTypeRSA = "RSA"
	KeyTypeEC  = "EC"
)

// Curves keygate makes keys on, by their Key Vault names.
const (
	CurveP256 = "P-256"
	CurveP384 = "P-384"
	CurveP521 = "P-521"
)

// RSASizes are the RSA key sizes keygate makes, in bits.
var RSASizes = []int{2048, 3072, 4096}

// KeySpec says what key to make: RSA with Size bits, or EC on Curve.
type KeySpec struct {
	Type  string
	Size  int
	Curve string
}

// String names the key type, e.g. "RSA 2048" or "EC P-256".
func (k KeySpec) String() string {
	if k.Type == KeyTypeEC {
		return "EC " + k.Curve
	}
	return fmt.Sprintf("%s %d", k.Type, k.Size)
}

// GenerateKey makes a new private key as spec says. RSA 4096 takes a
// second or more: callers on a request path should run it elsewhere.
func GenerateKey(spec KeySpec) (crypto.Signer, error) {
	switch spec.Type {
	case KeyTypeRSA:
		if !validRSASize(spec.Size) {
			return nil, fmt.Errorf("generating key: RSA key size %d is not one of 2048, 3072, 4096", spec.Size)
		}
		k, err := rsa.GenerateKey(rand.Reader, spec.Size)
		if err != nil {
			return nil, fmt.Errorf("generating RSA key: %w", err)
		}
		return k, nil
	case KeyTypeEC:
		c, err := curve(spec.Curve)
		if err != nil {
			return nil, err
		}
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating EC key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("generating key: key type %q is not RSA or EC", spec.Type)
}

func validRSASize(n int) bool {
	for _, s := range RSASizes {
		if s == n {
			return true
		}
	}
	return false
}

func curve(name string) (elliptic.Curve, error) {
	switch name {
	case CurveP256:
		return elliptic.P256(), nil
	case CurveP384:
		return elliptic.P384(), nil
	case CurveP521:
		return elliptic.P521(), nil
	}
	return nil, fmt.Errorf("generating key: curve %q is not P-256, P-384 or P-521", name)
}

// SpecOf describes a public key as a KeySpec. Keys other than RSA and
// ECDSA on the NIST curves are refused: Key Vault has no name for them.
func SpecOf(pub crypto.PublicKey) (KeySpec, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return KeySpec{Type: KeyTypeRSA, Size: k.N.BitLen()}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return KeySpec{Type: KeyTypeEC, Curve: CurveP256}, nil
		case elliptic.P384():
			return KeySpec{Type: KeyTypeEC, Curve: CurveP384}, nil
		case elliptic.P521():
			return KeySpec{Type: KeyTypeEC, Curve: CurveP521}, nil
		}
		return KeySpec{}, errors.New("EC key on a curve other than P-256, P-384 or P-521")
	case ed25519.PublicKey:
		return KeySpec{}, errors.New("Ed25519 keys are not supported; use RSA or EC")
	}
	return KeySpec{}, fmt.Errorf("key type %T is not supported; use RSA or EC", pub)
}

// KeyMatches reports whether key is the private half of pub.
func KeyMatches(pub crypto.PublicKey, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := key.Public().(equaler)
	return ok && e.Equal(pub)
}
