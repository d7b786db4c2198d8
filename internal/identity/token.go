package identity

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenClaims are the claims of an access token, named and shaped as in
// Entra's v2.0 tokens for an application: aud is a single string, sub is
// the object id, and both azp (v2) and appid (v1) carry the client id so
// that readers of either version find it.
type tokenClaims struct {
	Issuer    string           `json:"iss"`
	Audience  string           `json:"aud"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	ExpiresAt *jwt.NumericDate `json:"exp"`
	Subject   string           `json:"sub"`
	TenantID  string           `json:"tid"`
	ObjectID  string           `json:"oid"`
	AZP       string           `json:"azp"`
	AppID     string           `json:"appid"`
	Roles     []string         `json:"roles,omitempty"`
	UTI       string           `json:"uti"` // Entra's token id
	JTI       string           `json:"jti"` // RFC 7519's token id, the same
	Version   string           `json:"ver"`

	// MIResourceID is a managed identity's resource id, in the claim
	// Entra uses for it; empty for service principals.
	MIResourceID string `json:"xms_mirid,omitempty"`
}

// The methods below implement jwt.Claims.

func (c *tokenClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }
func (c *tokenClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt, nil }
func (c *tokenClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.NotBefore, nil }
func (c *tokenClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *tokenClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *tokenClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

// IssueToken issues an access token for sp to audience, which must be one
// of Config.Audiences (else ErrUnknownAudience), and returns it with its
// expiry. It does not look sp up: keygate's own services use it to mint
// tokens for principals they hold. The token endpoint authenticates the
// client first and then calls it.
func (a *Authority) IssueToken(sp ServicePrincipal, audience string) (token string, expires time.Time, err error) {
	return a.issue(sp, audience, "")
}

// issue is IssueToken with the resource id of a managed identity, which
// goes in the token's xms_mirid claim when not empty.
func (a *Authority) issue(sp ServicePrincipal, audience, miResourceID string) (token string, expires time.Time, err error) {
	st, err := a.current()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issuing token: %w", err)
	}
	aud, ok := a.audience(audience)
	if !ok {
		return "", time.Time{}, fmt.Errorf("issuing token for %q: %w", audience, ErrUnknownAudience)
	}
	if sp.ObjectID == "" || sp.ClientID == "" {
		return "", time.Time{}, errors.New("issuing token: principal has no object or client id")
	}
	id, err := tokenID()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issuing token: %w", err)
	}

	// Whole seconds, so that the expiry returned is the exp claim.
	now := a.cfg.Now().Truncate(time.Second)
	expires = now.Add(a.cfg.TokenLifetime)
	claims := &tokenClaims{
		Issuer: st.issuer, Audience: aud,
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(expires),
		Subject:   sp.ObjectID, TenantID: st.tenantID, ObjectID: sp.ObjectID,
		AZP: sp.ClientID, AppID: sp.ClientID, Roles: sp.Roles,
		UTI: id, JTI: id, Version: "2.0", MIResourceID: miResourceID,
	}
	key := st.keys.active(a.cfg.Now())
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = key.kid
	token, err = t.SignedString(key.priv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signing token with key %s: %w", key.kid, err)
	}
	a.log.Debug("issued token", "client_id", sp.ClientID, "audience", aud)
	return token, expires, nil
}

// tokenID returns a random token id: 16 bytes, base64url, as Entra's uti.
func tokenID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating token id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
