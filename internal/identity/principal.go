package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/keygate/keygate/internal/store"
)

// Limits on service principal fields.
const (
	maxDisplayNameLen = 256
	maxRoleLen        = 120
	maxRoles          = 50
	secretBytes       = 32
)

// ServicePrincipal is an application identity that obtains tokens with a
// client secret or a certificate. It holds no secret material.
type ServicePrincipal struct {
	ObjectID    string // the oid of its tokens; access policies name it
	ClientID    string // what the client authenticates as (appid, azp)
	DisplayName string
	Roles       []string // app roles, the roles claim of its tokens
	Created     time.Time

	// HasSecret says whether it has a client secret; KeyCredentials are
	// the certificates it may sign client assertions with.
	HasSecret      bool
	KeyCredentials []KeyCredential
}

// principalRecord is a service principal as stored.
type principalRecord struct {
	ObjectID    string    `json:"objectId"`
	ClientID    string    `json:"clientId"`
	DisplayName string    `json:"displayName"`
	Roles       []string  `json:"roles,omitempty"`
	Created     time.Time `json:"created"`

	// SecretSHA256 is the SHA-256 of the client secret, empty when the
	// principal has none. The secret is 256 random bits, so a fast hash
	// is as strong as a slow KDF here: there is no dictionary to search,
	// and stretching would only slow down every token request.
	SecretSHA256 []byte `json:"secretSha256"`

	KeyCredentials []keyCredentialRecord `json:"keyCredentials,omitempty"`
}

func (r *principalRecord) principal() ServicePrincipal {
	sp := ServicePrincipal{
		ObjectID: r.ObjectID, ClientID: r.ClientID, DisplayName: r.DisplayName,
		Roles: slices.Clone(r.Roles), Created: r.Created, HasSecret: len(r.SecretSHA256) > 0,
	}
	for _, k := range r.KeyCredentials {
		sp.KeyCredentials = append(sp.KeyCredentials, k.credential())
	}
	return sp
}

// CreateServicePrincipal stores a new principal with random object and
// client ids and returns it with its client secret: 32 random bytes,
// base64url. The secret is returned only here; the store keeps its hash.
func (a *Authority) CreateServicePrincipal(ctx context.Context, displayName string, roles []string) (ServicePrincipal, string, error) {
	return a.NewServicePrincipal(ctx, PrincipalSpec{DisplayName: displayName, Roles: roles, Secret: true})
}

// PrincipalSpec describes a service principal to create.
type PrincipalSpec struct {
	DisplayName string
	Roles       []string

	// Secret asks for a client secret; Certificates (DER) are key
	// credentials to register. A principal needs one or the other.
	Secret       bool
	Certificates [][]byte
}

// NewServicePrincipal stores a new principal as spec says and returns it,
// with its client secret when spec asks for one (returned only here).
// Bad fields and certificates are refused with ErrInvalid, and nothing
// is stored.
func (a *Authority) NewServicePrincipal(ctx context.Context, spec PrincipalSpec) (ServicePrincipal, string, error) {
	if _, err := a.current(); err != nil {
		return ServicePrincipal{}, "", fmt.Errorf("creating service principal: %w", err)
	}
	if err := checkPrincipalFields(spec.DisplayName, spec.Roles); err != nil {
		return ServicePrincipal{}, "", fmt.Errorf("creating service principal: %w: %w", err, ErrInvalid)
	}
	if !spec.Secret && len(spec.Certificates) == 0 {
		return ServicePrincipal{}, "", fmt.Errorf("creating service principal: give it a client secret, a certificate or both: %w", ErrInvalid)
	}
	if len(spec.Certificates) > maxKeyCredentials {
		return ServicePrincipal{}, "", fmt.Errorf("creating service principal: certificates: more than %d: %w", maxKeyCredentials, ErrInvalid)
	}
	rec, secret, err := a.newPrincipalRecord(spec.DisplayName, spec.Roles)
	if err != nil {
		return ServicePrincipal{}, "", fmt.Errorf("creating service principal: %w", err)
	}
	if !spec.Secret {
		rec.SecretSHA256, secret = nil, ""
	}
	for i, der := range spec.Certificates {
		kc, err := newKeyCredential(der, a.cfg.Now())
		if err != nil {
			return ServicePrincipal{}, "", fmt.Errorf("creating service principal: certificates[%d]: %w", i, err)
		}
		if slices.ContainsFunc(rec.KeyCredentials, func(k keyCredentialRecord) bool { return k.Thumbprint == kc.Thumbprint }) {
			return ServicePrincipal{}, "", fmt.Errorf("creating service principal: certificates[%d]: given twice: %w", i, ErrInvalid)
		}
		rec.KeyCredentials = append(rec.KeyCredentials, kc)
	}
	err = a.cfg.Store.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Get(bucketPrincipals, rec.ClientID)
		switch {
		case err == nil:
			// Two random GUIDs collided: not in this universe's lifetime.
			return fmt.Errorf("client id %s is taken", rec.ClientID)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		return putJSON(tx, bucketPrincipals, rec.ClientID, rec)
	})
	if err != nil {
		return ServicePrincipal{}, "", fmt.Errorf("creating service principal: %w", err)
	}
	a.log.Info("created service principal", "client_id", rec.ClientID,
		"object_id", rec.ObjectID, "display_name", spec.DisplayName)
	return rec.principal(), secret, nil
}

// ResetSecret gives the principal a new client secret, replacing any it
// had, and returns it (only here).
func (a *Authority) ResetSecret(ctx context.Context, clientID string) (string, error) {
	secret, err := newSecret()
	if err != nil {
		return "", fmt.Errorf("resetting the secret of service principal %s: %w", clientID, err)
	}
	err = a.updatePrincipal(ctx, clientID, func(rec *principalRecord) error {
		rec.SecretSHA256 = hashSecret(secret)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("resetting the secret of service principal %s: %w", clientID, err)
	}
	a.log.Info("reset service principal secret", "client_id", clientID)
	return secret, nil
}

// RemoveSecret removes the principal's client secret, leaving it its
// certificates. A principal with no certificate keeps its secret: it
// would have no way left to sign in (ErrInvalid).
func (a *Authority) RemoveSecret(ctx context.Context, clientID string) error {
	err := a.updatePrincipal(ctx, clientID, func(rec *principalRecord) error {
		if len(rec.KeyCredentials) == 0 {
			return fmt.Errorf("the principal has no certificate, and without its secret could not sign in; add a certificate first: %w", ErrInvalid)
		}
		rec.SecretSHA256 = nil
		return nil
	})
	if err != nil {
		return fmt.Errorf("removing the secret of service principal %s: %w", clientID, err)
	}
	a.log.Info("removed service principal secret", "client_id", clientID)
	return nil
}

// newPrincipalRecord makes the record and client secret of a new principal.
func (a *Authority) newPrincipalRecord(displayName string, roles []string) (principalRecord, string, error) {
	objectID, err := newGUID()
	if err != nil {
		return principalRecord{}, "", err
	}
	clientID, err := newGUID()
	if err != nil {
		return principalRecord{}, "", err
	}
	secret, err := newSecret()
	if err != nil {
		return principalRecord{}, "", err
	}
	rec := principalRecord{
		ObjectID: objectID, ClientID: clientID, DisplayName: displayName,
		Roles: slices.Clone(roles), Created: a.cfg.Now().UTC(),
		SecretSHA256: hashSecret(secret),
	}
	return rec, secret, nil
}

// newSecret makes a client secret: secretBytes random bytes, base64url.
func newSecret() (string, error) {
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generating client secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// checkPrincipalFields checks a new principal's display name and roles.
func checkPrincipalFields(displayName string, roles []string) error {
	switch {
	case strings.TrimSpace(displayName) == "":
		return errors.New("displayName: must not be empty")
	case len(displayName) > maxDisplayNameLen:
		return fmt.Errorf("displayName: longer than %d bytes", maxDisplayNameLen)
	case strings.ContainsFunc(displayName, unicode.IsControl):
		return errors.New("displayName: contains control characters")
	case len(roles) > maxRoles:
		return fmt.Errorf("roles: more than %d", maxRoles)
	}
	for i, r := range roles {
		if err := checkRole(r); err != nil {
			return fmt.Errorf("roles[%d]: %w", i, err)
		}
		if slices.Contains(roles[:i], r) {
			return fmt.Errorf("roles[%d]: %q is listed twice", i, r)
		}
	}
	return nil
}

// checkRole checks one app role name: printable, without spaces, as
// Entra's role values are.
func checkRole(r string) error {
	switch {
	case r == "":
		return errors.New("must not be empty")
	case len(r) > maxRoleLen:
		return fmt.Errorf("longer than %d bytes", maxRoleLen)
	case strings.ContainsFunc(r, notRoleRune):
		return fmt.Errorf("%q contains spaces or unprintable characters", r)
	}
	return nil
}

// notRoleRune reports whether c may not appear in a role name.
func notRoleRune(c rune) bool { return unicode.IsSpace(c) || !unicode.IsPrint(c) }

// ServicePrincipal returns the principal with the given client id, or an
// error wrapping ErrPrincipalNotFound.
func (a *Authority) ServicePrincipal(ctx context.Context, clientID string) (ServicePrincipal, error) {
	rec, err := a.loadPrincipal(ctx, clientID)
	if err != nil {
		return ServicePrincipal{}, err
	}
	return rec.principal(), nil
}

// loadPrincipal reads the stored record of clientID.
func (a *Authority) loadPrincipal(ctx context.Context, clientID string) (principalRecord, error) {
	var rec principalRecord
	if _, err := a.current(); err != nil {
		return rec, fmt.Errorf("loading service principal %s: %w", clientID, err)
	}
	err := a.cfg.Store.View(ctx, func(tx store.Tx) error {
		b, err := tx.Get(bucketPrincipals, clientID)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &rec)
	})
	if errors.Is(err, store.ErrNotFound) {
		return rec, fmt.Errorf("loading service principal %s: %w", clientID, ErrPrincipalNotFound)
	}
	if err != nil {
		return rec, fmt.Errorf("loading service principal %s: %w", clientID, err)
	}
	return rec, nil
}

// ListServicePrincipals returns every principal, ordered by client id.
func (a *Authority) ListServicePrincipals(ctx context.Context) ([]ServicePrincipal, error) {
	if _, err := a.current(); err != nil {
		return nil, fmt.Errorf("listing service principals: %w", err)
	}
	var sps []ServicePrincipal
	err := a.cfg.Store.View(ctx, func(tx store.Tx) error {
		sps = sps[:0]
		var decErr error
		err := tx.Scan(bucketPrincipals, "", "", func(key string, value []byte) bool {
			var rec principalRecord
			if err := json.Unmarshal(value, &rec); err != nil {
				decErr = fmt.Errorf("service principal %s: record is corrupt", key)
				return false
			}
			sps = append(sps, rec.principal())
			return true
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return decErr
	})
	if err != nil {
		return nil, fmt.Errorf("listing service principals: %w", err)
	}
	return sps, nil
}

// DeleteServicePrincipal removes the principal with the given client id;
// it can obtain no more tokens. Tokens it already holds stay valid until
// they expire, at most the token lifetime, as Entra's do: tokens are
// verified offline. An absent principal is ErrPrincipalNotFound.
func (a *Authority) DeleteServicePrincipal(ctx context.Context, clientID string) error {
	if _, err := a.current(); err != nil {
		return fmt.Errorf("deleting service principal %s: %w", clientID, err)
	}
	err := a.cfg.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(bucketPrincipals, clientID); err != nil {
			return err
		}
		return tx.Delete(bucketPrincipals, clientID)
	})
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("deleting service principal %s: %w", clientID, ErrPrincipalNotFound)
	}
	if err != nil {
		return fmt.Errorf("deleting service principal %s: %w", clientID, err)
	}
	a.log.Info("deleted service principal", "client_id", clientID)
	return nil
}

// Errors of authenticate, which the token endpoint maps to OAuth2 errors.
var (
	errUnknownClient = errors.New("unknown client")
	errWrongSecret   = errors.New("wrong client secret")
)

// authenticate returns the principal clientID names if secret is its
// client secret.
func (a *Authority) authenticate(ctx context.Context, clientID, secret string) (ServicePrincipal, error) {
	// Hash first, so that the work done does not depend on whether the
	// client exists.
	presented := hashSecret(secret)
	rec, err := a.loadPrincipal(ctx, clientID)
	if errors.Is(err, ErrPrincipalNotFound) {
		return ServicePrincipal{}, errUnknownClient
	}
	if err != nil {
		return ServicePrincipal{}, err
	}
	if subtle.ConstantTimeCompare(presented, rec.SecretSHA256) != 1 {
		return ServicePrincipal{}, errWrongSecret
	}
	return rec.principal(), nil
}

// hashSecret returns the SHA-256 of a client secret.
func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}
