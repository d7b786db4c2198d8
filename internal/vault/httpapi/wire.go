package httpapi

import (
	"net/http"
	"time"

	"github.com/keygate/keygate/internal/vault"
)

// attributesJSON is Key Vault's attributes object. Times are integer Unix
// seconds: the Go SDK's decoder refuses fractions. Created, Updated,
// RecoverableDays and RecoveryLevel are read-only, but clients send back what
// they read, so they are accepted and ignored on input.
type attributesJSON struct {
	Enabled         *bool   `json:"enabled,omitempty"`
	NotBefore       *int64  `json:"nbf,omitempty"`
	Expires         *int64  `json:"exp,omitempty"`
	Created         *int64  `json:"created,omitempty"`
	Updated         *int64  `json:"updated,omitempty"`
	RecoverableDays *int    `json:"recoverableDays,omitempty"`
	RecoveryLevel   *string `json:"recoveryLevel,omitempty"`
}

// toAttributesJSON puts a on the wire with the vault's soft-delete
// retention and recovery level (see vault.Vault.RecoveryLevel).
func toAttributesJSON(a vault.Attributes, recoverableDays int, level string) attributesJSON {
	enabled := a.Enabled
	created, updated := a.Created.Unix(), a.Updated.Unix()
	return attributesJSON{
		Enabled:         &enabled,
		NotBefore:       unixOrNil(a.NotBefore),
		Expires:         unixOrNil(a.Expires),
		Created:         &created,
		Updated:         &updated,
		RecoverableDays: &recoverableDays,
		RecoveryLevel:   &level,
	}
}

func (a *attributesJSON) update() vault.AttributesUpdate {
	if a == nil {
		return vault.AttributesUpdate{}
	}
	return vault.AttributesUpdate{
		Enabled:   a.Enabled,
		NotBefore: timeOrNil(a.NotBefore),
		Expires:   timeOrNil(a.Expires),
	}
}

func unixOrNil(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	u := t.Unix()
	return &u
}

func timeOrNil(u *int64) *time.Time {
	if u == nil {
		return nil
	}
	t := time.Unix(*u, 0).UTC()
	return &t
}

// tagsIn turns wire tags into the domain's; a null value (which the SDKs
// send for a nil *string) is an empty string.
func tagsIn(in map[string]*string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		if v != nil {
			out[k] = *v
		} else {
			out[k] = ""
		}
	}
	return out
}

// baseURL is the vault's origin as the client addressed it; ids are built
// on it so that they parse back to the same vault.
func baseURL(r *http.Request) string {
	return "https://" + r.Host
}

// objectID builds an object id: https://HOST/COLLECTION/NAME[/VERSION].
func objectID(r *http.Request, collection, name, version string) string {
	id := baseURL(r) + "/" + collection + "/" + name
	if version != "" {
		id += "/" + version
	}
	return id
}
