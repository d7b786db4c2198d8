package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/store"
)

// bucketManaged holds the user-assigned managed identities, keyed by
// lower-cased name: names compare case-insensitively, as Azure's do.
const bucketManaged = "identity_managed"

// Errors of managed identities and hosts, checked with errors.Is.
var (
	ErrIdentityNotFound = errors.New("managed identity not found")
	ErrIdentityExists   = errors.New("managed identity already exists")
	ErrHostNotFound     = errors.New("host not found")
	ErrInvalid          = errors.New("invalid parameter")
)

// ManagedIdentity is a user-assigned managed identity: an identity that
// belongs to no application, obtains tokens through the agent of a host
// it is assigned to, and needs no secret of its own. It has the fields of
// Azure's Microsoft.ManagedIdentity/userAssignedIdentities resource.
type ManagedIdentity struct {
	Name        string
	ClientID    string // selects the identity at the agent (client_id)
	PrincipalID string // the oid of its tokens; access policies name it
	TenantID    string
	ResourceID  string // selects the identity at the agent (mi_res_id)

	// KeygateService marks the identity as one of keygate's own services
	// (a gateway fleet's identity): its tokens carry authz.RoleService,
	// which a vault's networkAcls.bypass of AzureServices lets through.
	KeygateService bool

	Created time.Time
}

// principal returns the identity as the principal its tokens name.
func (m ManagedIdentity) principal() ServicePrincipal {
	sp := ServicePrincipal{ObjectID: m.PrincipalID, ClientID: m.ClientID, DisplayName: m.Name}
	if m.KeygateService {
		sp.Roles = []string{authz.RoleService}
	}
	return sp
}

// managedRecord is a managed identity as stored.
type managedRecord struct {
	Name           string    `json:"name"`
	ClientID       string    `json:"clientId"`
	PrincipalID    string    `json:"principalId"`
	KeygateService bool      `json:"keygateService,omitempty"`
	Created        time.Time `json:"created"`
}

// identity returns the record as a ManagedIdentity of tenant.
func (r *managedRecord) identity(tenantID string) ManagedIdentity {
	return ManagedIdentity{
		Name: r.Name, ClientID: r.ClientID, PrincipalID: r.PrincipalID,
		TenantID: tenantID, ResourceID: resourceID(tenantID, r.Name),
		KeygateService: r.KeygateService, Created: r.Created,
	}
}

// resourceID is the resource id of the identity called name, in the shape
// of an Azure resource id so that clients written for Azure pass it as
// mi_res_id unchanged. keygate has no subscriptions; the tenant stands in.
func resourceID(tenantID, name string) string {
	return "/tenants/" + tenantID + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
}

// ManagedIdentityOptions are the optional properties of a new identity.
type ManagedIdentityOptions struct {
	// KeygateService marks the identity as one of keygate's own services;
	// see ManagedIdentity.KeygateService.
	KeygateService bool
}

// CreateManagedIdentity stores a new identity with random client and
// principal ids. A name taken (in any case) is ErrIdentityExists; a bad
// name is ErrInvalid, with a message naming the rule.
func (a *Authority) CreateManagedIdentity(ctx context.Context, name string, opts ManagedIdentityOptions) (ManagedIdentity, error) {
	st, err := a.current()
	if err != nil {
		return ManagedIdentity{}, fmt.Errorf("creating managed identity: %w", err)
	}
	if err := ValidateIdentityName(name); err != nil {
		return ManagedIdentity{}, err
	}
	rec := managedRecord{Name: name, KeygateService: opts.KeygateService, Created: a.cfg.Now().UTC()}
	if rec.ClientID, err = newGUID(); err != nil {
		return ManagedIdentity{}, fmt.Errorf("creating managed identity: %w", err)
	}
	if rec.PrincipalID, err = newGUID(); err != nil {
		return ManagedIdentity{}, fmt.Errorf("creating managed identity: %w", err)
	}
	err = a.cfg.Store.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Get(bucketManaged, identityKey(name))
		switch {
		case err == nil:
			return fmt.Errorf("managed identity %q: %w", name, ErrIdentityExists)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		return putJSON(tx, bucketManaged, identityKey(name), rec)
	})
	if err != nil {
		return ManagedIdentity{}, fmt.Errorf("creating managed identity: %w", err)
	}
	a.log.Info("created managed identity", "name", name, "client_id", rec.ClientID,
		"principal_id", rec.PrincipalID, "keygate_service", opts.KeygateService)
	return rec.identity(st.tenantID), nil
}

// ManagedIdentity returns the identity called name (in any case), or an
// error wrapping ErrIdentityNotFound.
func (a *Authority) ManagedIdentity(ctx context.Context, name string) (ManagedIdentity, error) {
	st, err := a.current()
	if err != nil {
		return ManagedIdentity{}, fmt.Errorf("loading managed identity: %w", err)
	}
	var rec managedRecord
	err = a.cfg.Store.View(ctx, func(tx store.Tx) error {
		var err error
		rec, err = loadManaged(tx, name)
		return err
	})
	if err != nil {
		return ManagedIdentity{}, fmt.Errorf("loading managed identity: %w", err)
	}
	return rec.identity(st.tenantID), nil
}

// ListManagedIdentities returns every identity, ordered by lower-cased
// name.
func (a *Authority) ListManagedIdentities(ctx context.Context) ([]ManagedIdentity, error) {
	st, err := a.current()
	if err != nil {
		return nil, fmt.Errorf("listing managed identities: %w", err)
	}
	var out []ManagedIdentity
	err = a.cfg.Store.View(ctx, func(tx store.Tx) error {
		out = out[:0]
		return scanJSON(tx, bucketManaged, func(rec *managedRecord) {
			out = append(out, rec.identity(st.tenantID))
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing managed identities: %w", err)
	}
	return out, nil
}

// DeleteManagedIdentity removes the identity called name and its
// assignments to hosts: no agent obtains a token for it any more. Tokens
// already issued stay valid until they expire, as Azure's do.
func (a *Authority) DeleteManagedIdentity(ctx context.Context, name string) error {
	if _, err := a.current(); err != nil {
		return fmt.Errorf("deleting managed identity: %w", err)
	}
	err := a.cfg.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := loadManaged(tx, name); err != nil {
			return err
		}
		if err := tx.Delete(bucketManaged, identityKey(name)); err != nil {
			return err
		}
		return unassignEverywhere(tx, identityKey(name), a.cfg.Now().UTC())
	})
	if err != nil {
		return fmt.Errorf("deleting managed identity: %w", err)
	}
	a.log.Info("deleted managed identity", "name", name)
	return nil
}

// loadManaged reads the record of the identity called name.
func loadManaged(tx store.Tx, name string) (managedRecord, error) {
	var rec managedRecord
	b, err := tx.Get(bucketManaged, identityKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return rec, fmt.Errorf("managed identity %q: %w", name, ErrIdentityNotFound)
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("managed identity %q: record is corrupt", name)
	}
	return rec, nil
}

// identityKey is the store key of the identity called name.
func identityKey(name string) string { return strings.ToLower(name) }

// ValidateIdentityName checks a managed identity's name against Azure's
// rule: 3 to 128 characters, letters, digits, hyphens and underscores,
// starting with a letter or digit. The error wraps ErrInvalid.
func ValidateIdentityName(name string) error {
	if len(name) < 3 || len(name) > 128 {
		return fmt.Errorf("name: %q must be 3 to 128 characters long: %w", truncate(name, 40), ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '-' && c != '_') {
			return fmt.Errorf("name: %q may hold only letters, digits, '-' and '_', and must start with a letter or digit: %w",
				truncate(name, 40), ErrInvalid)
		}
	}
	return nil
}

// scanJSON decodes every record of bucket into a fresh T and passes it to
// fn, in key order. A bucket never written to holds nothing.
func scanJSON[T any](tx store.Tx, bucket string, fn func(*T)) error {
	var decErr error
	err := tx.Scan(bucket, "", "", func(key string, value []byte) bool {
		rec := new(T)
		if err := json.Unmarshal(value, rec); err != nil {
			decErr = fmt.Errorf("%s record %s is corrupt", bucket, key)
			return false
		}
		fn(rec)
		return true
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return decErr
}

// truncate shortens s for a message.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
