package vault

import (
	"context"
	"errors"

	"github.com/keygate/keygate/internal/pki"
	"github.com/keygate/keygate/internal/store"
)

// CertificateKey is the public half of a certificate version's key, as
// Key Vault serves it at /keys/{name}/{version}.
type CertificateKey struct {
	Name       string
	Version    string
	JWK        pki.JWK
	Attributes Attributes
	Tags       map[string]string

	// Exportable says whether the private key is in the secret.
	Exportable      bool
	RecoverableDays int
	RecoveryLevel   string
}

// GetCertificateKey returns the public key of a certificate version (the
// current one when version is empty). Only the public half is served:
// the private key is read, where exportable, through the secret.
func (s *Service) GetCertificateKey(ctx context.Context, vault, name, version string) (CertificateKey, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return CertificateKey{}, err
	}
	var out CertificateKey
	err = s.store.View(ctx, func(tx store.Tx) error {
		head, rec, err := loadCertVersion(tx, vault, name, version)
		if errors.Is(err, ErrNotFound) {
			return errorf(ErrNotFound, "key %s not found: keygate serves the keys of its certificates only", quoteName(name))
		}
		if err != nil {
			return err
		}
		leaf, err := rec.leaf()
		if err != nil {
			return err
		}
		jwk, err := pki.PublicJWK(leaf.PublicKey)
		if err != nil {
			return err
		}
		p := rec.properties(head.Name, v)
		out = CertificateKey{Name: head.Name, Version: rec.Version, JWK: jwk, Attributes: p.Attributes,
			Tags: rec.Tags, Exportable: rec.Exportable, RecoverableDays: p.RecoverableDays,
			RecoveryLevel: p.RecoveryLevel}
		return nil
	})
	return out, err
}
