package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// maxKeyCredentials bounds the certificates of one principal: enough to
// roll one over while another is in use, several times.
const maxKeyCredentials = 10

// KeyCredential is a certificate a service principal proves itself with:
// it signs a client assertion with the certificate's key, and the token
// endpoint checks the signature with the certificate registered here (a
// key credential, as Entra calls it). Only the certificate is kept; the
// key never reaches keygate.
type KeyCredential struct {
	// Thumbprint is the certificate's SHA-256 thumbprint, base64url
	// without padding: the x5t#S256 that assertions name it by.
	Thumbprint string
	Subject    string
	NotAfter   time.Time
	Added      time.Time
}

// keyCredentialRecord is a KeyCredential as stored, with the certificate.
type keyCredentialRecord struct {
	Thumbprint string    `json:"x5tS256"`
	SHA1       string    `json:"x5t"` // for assertions signed RS256 with x5t
	DER        []byte    `json:"der"`
	NotAfter   time.Time `json:"notAfter"`
	Added      time.Time `json:"added"`
}

func (k keyCredentialRecord) credential() KeyCredential {
	kc := KeyCredential{Thumbprint: k.Thumbprint, NotAfter: k.NotAfter, Added: k.Added}
	if c, err := x509.ParseCertificate(k.DER); err == nil {
		kc.Subject = c.Subject.String()
	}
	return kc
}

// newKeyCredential checks a certificate for use as a key credential: it
// parses, has not expired, and holds an RSA key of 2048 bits or more or
// an ECDSA key on P-256 or P-384. Errors wrap ErrInvalid.
func newKeyCredential(der []byte, now time.Time) (keyCredentialRecord, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return keyCredentialRecord{}, fmt.Errorf("certificate: not a DER X.509 certificate: %w", ErrInvalid)
	}
	if !now.Before(cert.NotAfter) {
		return keyCredentialRecord{}, fmt.Errorf("certificate: expired on %s: %w", cert.NotAfter.UTC().Format(time.DateOnly), ErrInvalid)
	}
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return keyCredentialRecord{}, fmt.Errorf("certificate: an RSA key of %d bits; 2048 or more are needed: %w", k.N.BitLen(), ErrInvalid)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return keyCredentialRecord{}, fmt.Errorf("certificate: an ECDSA key on %s; P-256 or P-384 are supported: %w", k.Curve.Params().Name, ErrInvalid)
		}
	default:
		return keyCredentialRecord{}, fmt.Errorf("certificate: a %T key; RSA or ECDSA are supported: %w", cert.PublicKey, ErrInvalid)
	}
	s256 := sha256.Sum256(der)
	s1 := sha1.Sum(der)
	return keyCredentialRecord{
		Thumbprint: base64.RawURLEncoding.EncodeToString(s256[:]),
		SHA1:       base64.RawURLEncoding.EncodeToString(s1[:]),
		DER:        der, NotAfter: cert.NotAfter.UTC(), Added: now.UTC(),
	}, nil
}

// AddKeyCredential registers a certificate (DER) the principal clientID
// may sign client assertions with, and returns it. A certificate
// registered already, or one too many, is refused with ErrInvalid.
func (a *Authority) AddKeyCredential(ctx context.Context, clientID string, der []byte) (KeyCredential, error) {
	kc, err := newKeyCredential(der, a.cfg.Now())
	if err != nil {
		return KeyCredential{}, fmt.Errorf("adding a certificate to service principal %s: %w", clientID, err)
	}
	err = a.updatePrincipal(ctx, clientID, func(rec *principalRecord) error {
		if slices.ContainsFunc(rec.KeyCredentials, func(k keyCredentialRecord) bool { return k.Thumbprint == kc.Thumbprint }) {
			return fmt.Errorf("certificate %s is registered already: %w", kc.Thumbprint, ErrInvalid)
		}
		if len(rec.KeyCredentials) >= maxKeyCredentials {
			return fmt.Errorf("the principal has %d certificates, the most allowed; remove one first: %w", maxKeyCredentials, ErrInvalid)
		}
		rec.KeyCredentials = append(rec.KeyCredentials, kc)
		return nil
	})
	if err != nil {
		return KeyCredential{}, fmt.Errorf("adding a certificate to service principal %s: %w", clientID, err)
	}
	a.log.Info("added certificate to service principal", "client_id", clientID, "thumbprint", kc.Thumbprint, "not_after", kc.NotAfter)
	return kc.credential(), nil
}

// RemoveKeyCredential removes the certificate with the given x5t#S256
// thumbprint from the principal; assertions it signs are refused from
// then on. An unknown thumbprint is ErrKeyCredentialNotFound.
func (a *Authority) RemoveKeyCredential(ctx context.Context, clientID, thumbprint string) error {
	err := a.updatePrincipal(ctx, clientID, func(rec *principalRecord) error {
		i := slices.IndexFunc(rec.KeyCredentials, func(k keyCredentialRecord) bool { return k.Thumbprint == thumbprint })
		if i < 0 {
			return ErrKeyCredentialNotFound
		}
		if len(rec.KeyCredentials) == 1 && len(rec.SecretSHA256) == 0 {
			return fmt.Errorf("it is the principal's last certificate and it has no secret: it could not sign in; add another certificate or reset its secret first: %w", ErrInvalid)
		}
		rec.KeyCredentials = slices.Delete(rec.KeyCredentials, i, i+1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("removing certificate %s from service principal %s: %w", truncate(thumbprint, 64), clientID, err)
	}
	a.log.Info("removed certificate from service principal", "client_id", clientID, "thumbprint", thumbprint)
	return nil
}

// ErrKeyCredentialNotFound is returned for a thumbprint a principal does
// not have.
var ErrKeyCredentialNotFound = errors.New("no certificate with this thumbprint")

// updatePrincipal changes the stored record of clientID with fn, in one
// transaction.
func (a *Authority) updatePrincipal(ctx context.Context, clientID string, fn func(*principalRecord) error) error {
	if _, err := a.current(); err != nil {
		return err
	}
	return a.cfg.Store.Update(ctx, func(tx store.Tx) error {
		b, err := tx.Get(bucketPrincipals, clientID)
		if errors.Is(err, store.ErrNotFound) {
			return ErrPrincipalNotFound
		}
		if err != nil {
			return err
		}
		var rec principalRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("service principal %s: record is corrupt", clientID)
		}
		if err := fn(&rec); err != nil {
			return err
		}
		return putJSON(tx, bucketPrincipals, clientID, rec)
	})
}
