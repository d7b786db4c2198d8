package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keygate/keygate/internal/store"
)

// assertionType is the client_assertion_type of a signed JWT (RFC 7523).
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Bounds on client assertions. MSAL makes them valid for ten minutes;
// the leeway absorbs clocks a little apart, and the lifetime bound keeps
// a stolen assertion from being useful for long.
const (
	assertionLeeway      = 5 * time.Minute
	maxAssertionLifetime = time.Hour
	maxAssertionBytes    = 16 << 10
)

// Refusals of client assertions, each with Entra's number for the same.
var (
	errAssertionMalformed = &oauthError{401, "invalid_client", 50027,
		"The client assertion is not a valid JWT signed with PS256, RS256, ES256 or ES384."}
	errAssertionKey = &oauthError{401, "invalid_client", 700027,
		"The client assertion names no certificate registered for this client (x5t#S256 or x5t), or its signature does not verify with it."}
	errAssertionCertExpired = &oauthError{401, "invalid_client", 700027,
		"The certificate the client assertion was signed with has expired; register a new one."}
	errAssertionTime = &oauthError{401, "invalid_client", 700024,
		"The client assertion is not within its valid time range (exp and nbf, at most an hour apart)."}
	errAssertionClaims = &oauthError{401, "invalid_client", 700021,
		"The client assertion's iss and sub must be the client_id, and its aud this authority's token endpoint."}
	errAssertionReplayed = &oauthError{401, "invalid_client", 700027,
		"The client assertion has been used before (jti); sign a new one for each request."}
)

// authenticateAssertion returns the principal clientID names if assertion
// is a JWT it signed with one of its registered certificates, addressed
// to endpoint, current, and not seen before.
func (a *Authority) authenticateAssertion(ctx context.Context, clientID, assertion, endpoint string) (ServicePrincipal, *oauthError) {
	if len(assertion) > maxAssertionBytes {
		return ServicePrincipal{}, errAssertionMalformed
	}
	rec, err := a.loadPrincipal(ctx, clientID)
	if errors.Is(err, ErrPrincipalNotFound) {
		return ServicePrincipal{}, unknownClient(clientID)
	}
	if err != nil {
		return ServicePrincipal{}, authError(clientID, err)
	}

	now := a.cfg.Now()
	var used *keyCredentialRecord
	claims := &jwt.RegisteredClaims{}
	_, err = jwt.ParseWithClaims(assertion, claims, func(t *jwt.Token) (any, error) {
		kc := findKeyCredential(rec.KeyCredentials, t.Header)
		if kc == nil {
			return nil, errors.New("no registered certificate")
		}
		used = kc
		return kc.publicKey(t.Method)
	},
		jwt.WithValidMethods([]string{"PS256", "RS256", "ES256", "ES384"}),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithLeeway(assertionLeeway),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(endpoint),
		jwt.WithIssuer(clientID),
		jwt.WithSubject(clientID),
	)
	if err != nil {
		return ServicePrincipal{}, assertionError(err)
	}
	if claims.ExpiresAt.Sub(now) > maxAssertionLifetime+assertionLeeway {
		return ServicePrincipal{}, errAssertionTime
	}
	if !now.Before(used.NotAfter) {
		return ServicePrincipal{}, errAssertionCertExpired
	}
	fresh, err := a.firstUse(ctx, assertion, claims.ExpiresAt.Time)
	if err != nil {
		return ServicePrincipal{}, authError(clientID, err)
	}
	if !fresh {
		return ServicePrincipal{}, errAssertionReplayed
	}
	return rec.principal(), nil
}

// assertionError maps what jwt found wrong to the refusal. jwt checks in
// order: the form, the method, the key, the signature, then the claims.
func assertionError(err error) *oauthError {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errAssertionMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errAssertionKey
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errAssertionTime
	}
	return errAssertionClaims
}

// findKeyCredential returns the certificate a JWT header names by its
// x5t#S256 (SHA-256) or x5t (SHA-1) thumbprint, in base64 with or
// without padding, standard or URL alphabet: MSAL Go pads the standard
// alphabet, MSAL for JavaScript uses base64url.
func findKeyCredential(certs []keyCredentialRecord, header map[string]any) *keyCredentialRecord {
	for _, h := range []struct {
		name string
		of   func(*keyCredentialRecord) string
	}{
		{"x5t#S256", func(k *keyCredentialRecord) string { return k.Thumbprint }},
		{"x5t", func(k *keyCredentialRecord) string { return k.SHA1 }},
	} {
		s, _ := header[h.name].(string)
		if s == "" {
			continue
		}
		want := normalizeBase64(s)
		for i := range certs {
			if h.of(&certs[i]) == want {
				return &certs[i]
			}
		}
	}
	return nil
}

// normalizeBase64 rewrites base64 text as base64url without padding.
func normalizeBase64(s string) string {
	s = strings.TrimRight(s, "=")
	return strings.NewReplacer("+", "-", "/", "_").Replace(s)
}

// publicKey returns the certificate's key for verifying with method,
// refusing a method that does not fit the key's type.
func (k *keyCredentialRecord) publicKey(method jwt.SigningMethod) (any, error) {
	cert, err := x509.ParseCertificate(k.DER)
	if err != nil {
		return nil, err
	}
	switch cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if strings.HasPrefix(method.Alg(), "ES") {
			return nil, fmt.Errorf("%s with an RSA key", method.Alg())
		}
	case *ecdsa.PublicKey:
		if !strings.HasPrefix(method.Alg(), "ES") {
			return nil, fmt.Errorf("%s with an ECDSA key", method.Alg())
		}
	}
	return cert.PublicKey, nil
}

// bucketAssertions keeps the client assertions accepted until they
// expire, so that each is accepted once across restarts and replicas.
// Keys are the expiry (Unix seconds, zero-padded, so that keys sort by
// it) and the SHA-256 of the whole assertion.
const bucketAssertions = "identity_assertions"

func assertionKey(exp time.Time, assertion string) string {
	sum := sha256.Sum256([]byte(assertion))
	return fmt.Sprintf("%012d/%s", exp.Unix(), hex.EncodeToString(sum[:]))
}

// firstUse records the assertion as used and reports whether it was new.
// Signed, it cannot be changed without its signature failing, so a replay
// is the same text with the same expiry: the same key.
func (a *Authority) firstUse(ctx context.Context, assertion string, exp time.Time) (bool, error) {
	key := assertionKey(exp, assertion)
	fresh := false
	err := a.cfg.Store.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Get(bucketAssertions, key)
		switch {
		case err == nil:
			fresh = false
			return nil
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		fresh = true
		return tx.Put(bucketAssertions, key, []byte{1})
	})
	return fresh, err
}

// maxAssertionsPurged bounds one purge's transaction.
const maxAssertionsPurged = 10000

// purgeAssertions forgets the assertions that expired more than the
// leeway ago: they would be refused for their time anyway.
func (a *Authority) purgeAssertions(ctx context.Context) error {
	limit := fmt.Sprintf("%012d", a.cfg.Now().Add(-assertionLeeway).Unix())
	var old []string
	err := a.cfg.Store.View(ctx, func(tx store.Tx) error {
		old = old[:0]
		err := tx.Scan(bucketAssertions, "", "", func(key string, _ []byte) bool {
			if key >= limit || len(old) == maxAssertionsPurged {
				return false
			}
			old = append(old, key)
			return true
		})
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil || len(old) == 0 {
		return err
	}
	return a.cfg.Store.Update(ctx, func(tx store.Tx) error {
		for _, k := range old {
			if err := tx.Delete(bucketAssertions, k); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	})
}
