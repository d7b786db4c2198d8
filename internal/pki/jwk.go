package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"math/big"
)

// JWK is the public half of a key as a JSON Web Key (RFC 7517), with the
// members Key Vault returns for a certificate's key.
type JWK struct {
	KID    string   `json:"kid,omitempty"`
	KTY    string   `json:"kty"`
	KeyOps []string `json:"key_ops,omitempty"`
	N      string   `json:"n,omitempty"`
	E      string   `json:"e,omitempty"`
	CRV    string   `json:"crv,omitempty"`
	X      string   `json:"x,omitempty"`
	Y      string   `json:"y,omitempty"`
}

// PublicJWK returns the JWK of an RSA or EC public key. Coordinates are
// padded to the curve's size, as RFC 7518 requires.
func PublicJWK(pub crypto.PublicKey) (JWK, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return JWK{
			KTY:    KeyTypeRSA,
			KeyOps: []string{"sign", "verify", "encrypt", "decrypt", "wrapKey", "unwrapKey"},
			N:      b64(k.N.Bytes()),
			E:      b64(big.NewInt(int64(k.E)).Bytes()),
		}, nil
	case *ecdsa.PublicKey:
		spec, err := SpecOf(k)
		if err != nil {
			return JWK{}, err
		}
		// The uncompressed point is 0x04, X, Y, each padded to the
		// curve's size, as the JWK wants them.
		point, err := k.Bytes()
		if err != nil {
			return JWK{}, fmt.Errorf("encoding EC public key: %w", err)
		}
		size := (len(point) - 1) / 2
		return JWK{
			KTY:    KeyTypeEC,
			KeyOps: []string{"sign", "verify"},
			CRV:    spec.Curve,
			X:      b64(point[1 : 1+size]),
			Y:      b64(point[1+size:]),
		}, nil
	}
	return JWK{}, fmt.Errorf("key type %T has no JWK here", pub)
}
