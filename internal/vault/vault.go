// Package vault is keygate's vault domain: vaults with their access
// policies, and the secrets they keep, with versions, attributes, soft
// delete and backups. It knows nothing of HTTP or of the Key Vault wire
// format; package httpapi translates.
//
// Values are sealed before they reach the store, with the record's identity
// (vault, kind, name, version) bound as associated data, so the store never
// holds plaintext and a sealed value moved to another record fails to open.
package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/store"
)

// DefaultVault is the name of the vault served at a server's bare address.
const DefaultVault = "default"

// DefaultRetentionDays is how long a soft-deleted object is kept before it
// is purged, unless the vault says otherwise.
const DefaultRetentionDays = 90

// Sealer encrypts and decrypts records. *seal.Sealer implements it.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// Config holds what a Service needs. Store, Sealer and BackupSealer are
// required.
type Config struct {
	Store store.Store

	// Sealer seals values at rest.
	Sealer Sealer

	// BackupSealer seals backup blobs. It should be keyed apart from Sealer
	// (a derived key) so that a backup blob cannot be passed off as a
	// stored record or the other way round.
	BackupSealer Sealer

	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// Logger receives lifecycle messages; nil discards them.
	Logger *slog.Logger
}

// Service is the vault domain. It is safe for concurrent use.
type Service struct {
	store  store.Store
	sealer Sealer
	backup Sealer
	now    func() time.Time
	log    *slog.Logger

	// mu guards vaults, a cache of vault properties. Every request checks
	// access policies, so they are kept decoded in memory; this process's
	// writes update the cache in the same step as the store.
	// TODO: replicas sharing a store (PostgreSQL) must learn of each
	// other's policy changes; until then the cache is per process.
	mu     sync.RWMutex
	vaults map[string]*Vault
}

// New returns a Service. It does no I/O.
func New(cfg Config) *Service {
	s := &Service{
		store:  cfg.Store,
		sealer: cfg.Sealer,
		backup: cfg.BackupSealer,
		now:    cfg.Now,
		log:    cfg.Logger,
		vaults: make(map[string]*Vault),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Vault is a vault's properties, named as on Azure's Microsoft.KeyVault/vaults
// resource.
type Vault struct {
	Name                         string               `json:"name"`
	TenantID                     string               `json:"tenantId"`
	AccessPolicies               []authz.AccessPolicy `json:"accessPolicies"`
	EnableSoftDelete             bool                 `json:"enableSoftDelete"`
	SoftDeleteRetentionInDays    int                  `json:"softDeleteRetentionInDays"`
	EnabledForTemplateDeployment bool                 `json:"enabledForTemplateDeployment"`
	Created                      time.Time            `json:"created"`
	Updated                      time.Time            `json:"updated"`
}

// Retention is how long soft-deleted objects of v are kept.
func (v *Vault) Retention() time.Duration {
	days := v.SoftDeleteRetentionInDays
	if days == 0 {
		days = DefaultRetentionDays
	}
	return time.Duration(days) * 24 * time.Hour
}

const bucketVaults = "vaults"

// EnsureVault creates the vault called name with tenant and the given
// access policies if it does not exist, and returns it as stored.
func (s *Service) EnsureVault(ctx context.Context, name, tenantID string, policies []authz.AccessPolicy) (*Vault, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var out *Vault
	err := s.store.Update(ctx, func(tx store.Tx) error {
		v, err := loadVault(tx, name)
		if err == nil {
			out = v
			return nil
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		now := s.now().UTC()
		out = &Vault{
			Name:                      name,
			TenantID:                  tenantID,
			AccessPolicies:            policies,
			EnableSoftDelete:          true,
			SoftDeleteRetentionInDays: DefaultRetentionDays,
			Created:                   now,
			Updated:                   now,
		}
		return putJSON(tx, bucketVaults, name, out)
	})
	if err != nil {
		return nil, err
	}
	s.cacheVault(out)
	return out, nil
}

// Vault returns the properties of the vault called name. The result is
// shared: callers must not modify it.
func (s *Service) Vault(ctx context.Context, name string) (*Vault, error) {
	s.mu.RLock()
	v, ok := s.vaults[name]
	s.mu.RUnlock()
	if ok {
		return v, nil
	}
	err := s.store.View(ctx, func(tx store.Tx) error {
		var err error
		v, err = loadVault(tx, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.cacheVault(v)
	return v, nil
}

// VaultNames lists the names of every vault, in order.
func (s *Service) VaultNames(ctx context.Context) ([]string, error) {
	var names []string
	err := s.store.View(ctx, func(tx store.Tx) error {
		names = nil
		return tx.Scan(bucketVaults, "", "", func(key string, _ []byte) bool {
			names = append(names, key)
			return true
		})
	})
	return names, err
}

// SetAccessPolicy adds p to the vault, or replaces the entry for the same
// tenant and object id, as `az keyvault set-policy` does.
func (s *Service) SetAccessPolicy(ctx context.Context, vault string, p authz.AccessPolicy) (*Vault, error) {
	if err := p.Validate(); err != nil {
		return nil, badParameter("%s", err)
	}
	return s.updateVault(ctx, vault, func(v *Vault) error {
		for i, q := range v.AccessPolicies {
			if samePrincipal(q, p) {
				v.AccessPolicies[i] = p
				return nil
			}
		}
		v.AccessPolicies = append(v.AccessPolicies, p)
		return nil
	})
}

// DeleteAccessPolicy removes the vault's entry for tenantID and objectID.
func (s *Service) DeleteAccessPolicy(ctx context.Context, vault, tenantID, objectID string) (*Vault, error) {
	return s.updateVault(ctx, vault, func(v *Vault) error {
		for i, q := range v.AccessPolicies {
			if samePrincipal(q, authz.AccessPolicy{TenantID: tenantID, ObjectID: objectID}) {
				v.AccessPolicies = append(v.AccessPolicies[:i], v.AccessPolicies[i+1:]...)
				return nil
			}
		}
		return errorf(ErrNotFound, "vault %s has no access policy for object id %s", vault, objectID)
	})
}

func samePrincipal(a, b authz.AccessPolicy) bool {
	return a.TenantID == b.TenantID && a.ObjectID == b.ObjectID
}

// updateVault applies change to a copy of the stored vault and stores it.
func (s *Service) updateVault(ctx context.Context, name string, change func(*Vault) error) (*Vault, error) {
	var out *Vault
	err := s.store.Update(ctx, func(tx store.Tx) error {
		v, err := loadVault(tx, name)
		if err != nil {
			return err
		}
		if err := change(v); err != nil {
			return err
		}
		v.Updated = s.now().UTC()
		out = v
		return putJSON(tx, bucketVaults, name, v)
	})
	if err != nil {
		return nil, err
	}
	s.cacheVault(out)
	return out, nil
}

func (s *Service) cacheVault(v *Vault) {
	s.mu.Lock()
	s.vaults[v.Name] = v
	s.mu.Unlock()
}

func loadVault(tx store.Tx, name string) (*Vault, error) {
	v := new(Vault)
	if err := getJSON(tx, bucketVaults, name, v); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errorf(ErrNotFound, "vault %s not found", name)
		}
		return nil, err
	}
	return v, nil
}

// newVersion returns a fresh version id: 32 lowercase hex characters, as
// Key Vault's.
func newVersion() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func putJSON(tx store.Tx, bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s record: %w", bucket, err)
	}
	return tx.Put(bucket, key, b)
}

func getJSON(tx store.Tx, bucket, key string, v any) error {
	b, err := tx.Get(bucket, key)
	if err != nil {
		return err
	}
	if err := unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %s record %q: %w", bucket, key, err)
	}
	return nil
}

func unmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding stored record: %w", err)
	}
	return nil
}
