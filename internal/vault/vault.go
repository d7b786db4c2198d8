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
	"maps"
	"slices"
	"strings"
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

	// changed wakes after any process sharing the store changed vault
	// properties (nil where the store cannot tell); see dropStale.
	changed <-chan struct{}

	// mu guards vaults, a cache of vault properties, and gen. Every
	// request checks network rules and access policies, so they are kept
	// decoded in memory. Every change drops the cache, here and, through
	// the store's notifications, in every other process on the store;
	// gen counts the drops, so that a read that began before one does not
	// put what it read back.
	mu     sync.RWMutex
	vaults map[string]*Vault
	gen    uint64
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
	if n, ok := cfg.Store.(store.Notifier); ok {
		// The subscription lives as long as the process: a Service is
		// made once per server.
		s.changed, _ = n.Subscribe(vaultsTopic)
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
	NetworkACLs                  authz.NetworkACLs    `json:"networkAcls"`

	// EnablePurgeProtection, once true, stays true: deleted objects and
	// the deleted vault itself are purged only on their scheduled purge
	// date, by the purger, never early on request.
	EnablePurgeProtection bool `json:"enablePurgeProtection,omitempty"`

	// Location and Tags are kept as given, for the callers' own
	// bookkeeping: keygate has no regions, and tags change nothing.
	Location string            `json:"location,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`

	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// RecoveryLevel is what soft delete amounts to in v, in the terms of Key
// Vault's DeletionRecoveryLevel: recoverable, "Customized" when the
// retention is under 90 days, and "+Purgeable" unless purge protection
// forbids early purges.
func (v *Vault) RecoveryLevel() string {
	level := "Recoverable"
	if v.Retention() < MaxRetentionDays*24*time.Hour {
		level = "CustomizedRecoverable"
	}
	if !v.EnablePurgeProtection {
		level += "+Purgeable"
	}
	return level
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
		if err := nameHeldByDeleted(tx, name); err != nil {
			return err
		}
		out = s.newVault(name, tenantID)
		out.AccessPolicies = policies
		return putJSON(tx, bucketVaults, name, out)
	})
	if err != nil {
		return nil, err
	}
	s.vaultChanged(ctx, name)
	return out, nil
}

// Vault returns the properties of the vault called name. The result is
// shared: callers must not modify it.
func (s *Service) Vault(ctx context.Context, name string) (*Vault, error) {
	s.dropStale()
	s.mu.RLock()
	v, ok := s.vaults[name]
	gen := s.gen
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
	s.mu.Lock()
	if s.gen == gen {
		s.vaults[name] = v
	}
	s.mu.Unlock()
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
	s.vaultChanged(ctx, name)
	return out, nil
}

// vaultsTopic is the store.Notifier topic woken after vault properties
// change.
const vaultsTopic = "vaults"

// vaultChanged drops this process's cached properties of the vault called
// name and tells the other processes on the store to drop theirs, once a
// change to them has committed.
func (s *Service) vaultChanged(ctx context.Context, name string) {
	s.mu.Lock()
	delete(s.vaults, name)
	s.gen++
	s.mu.Unlock()
	s.notify(ctx, vaultsTopic)
}

// SubscribeVaultChanges returns a channel that receives a value soon after
// any process on the store changed vault properties (access policies,
// network rules) or deleted a vault, and a function that ends the
// subscription; see SubscribeEvents for what wake-ups mean. Where the
// store cannot notify, the channel never receives.
func (s *Service) SubscribeVaultChanges() (<-chan struct{}, func()) {
	n, ok := s.store.(store.Notifier)
	if !ok {
		return nil, func() {}
	}
	return n.Subscribe(vaultsTopic)
}

// dropStale drops the whole cache when some process changed vault
// properties since the last look. Notifications name no vault, and
// changes are rare next to reads, so all go.
func (s *Service) dropStale() {
	select {
	case <-s.changed:
		s.mu.Lock()
		clear(s.vaults)
		s.gen++
		s.mu.Unlock()
	default:
	}
}

// notify wakes topic's subscribers in every process on the store, where
// the store can. A failure only delays them until they look on their own,
// so it is logged.
func (s *Service) notify(ctx context.Context, topic string) {
	n, ok := s.store.(store.Notifier)
	if !ok {
		return
	}
	if err := n.Notify(ctx, topic); err != nil {
		s.log.Warn("notifying other processes failed", "topic", topic, "err", err)
	}
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

// Bounds of a vault's soft-delete retention, as Azure's.
const (
	MinRetentionDays = 7
	MaxRetentionDays = 90
)

// newVault returns the properties of a new vault with Azure's defaults:
// soft delete on for 90 days, the firewall open, no access policies.
func (s *Service) newVault(name, tenantID string) *Vault {
	now := s.now().UTC()
	return &Vault{
		Name:                      name,
		TenantID:                  tenantID,
		AccessPolicies:            []authz.AccessPolicy{},
		EnableSoftDelete:          true,
		SoftDeleteRetentionInDays: DefaultRetentionDays,
		NetworkACLs: authz.NetworkACLs{
			DefaultAction: authz.ActionAllow, Bypass: authz.BypassAzureServices, IPRules: []authz.IPRule{},
		},
		Created: now,
		Updated: now,
	}
}

// VaultProperties are the settable properties of a vault, named as on
// Azure's resource. A nil field is left as it is (on creation: as the
// default).
type VaultProperties struct {
	AccessPolicies               *[]authz.AccessPolicy
	EnableSoftDelete             *bool
	SoftDeleteRetentionInDays    *int
	EnabledForTemplateDeployment *bool
	NetworkACLs                  *authz.NetworkACLs
	EnablePurgeProtection        *bool

	// Location is set when the vault is created; a vault cannot move, so
	// a later, different location is ErrBadParameter.
	Location *string

	// Tags replace the vault's tags.
	Tags *map[string]string
}

// apply checks p and sets its fields on v. The error names the first bad
// field and wraps ErrBadParameter; v may be half changed then, so callers
// apply to a copy.
func (p VaultProperties) apply(v *Vault) error {
	if p.AccessPolicies != nil {
		for i, ap := range *p.AccessPolicies {
			if err := ap.Validate(); err != nil {
				return badParameter("accessPolicies[%d].%s", i, err)
			}
		}
		v.AccessPolicies = slices.Clone(*p.AccessPolicies)
	}
	if p.EnableSoftDelete != nil && !*p.EnableSoftDelete {
		// Azure made soft delete mandatory in 2020; keygate's retention
		// and recovery are built on it.
		return badParameter("enableSoftDelete: soft delete cannot be turned off; shorten softDeleteRetentionInDays instead")
	}
	if d := p.SoftDeleteRetentionInDays; d != nil {
		if *d < MinRetentionDays || *d > MaxRetentionDays {
			return badParameter("softDeleteRetentionInDays: %d is not between %d and %d", *d, MinRetentionDays, MaxRetentionDays)
		}
		v.SoftDeleteRetentionInDays = *d
	}
	if p.EnabledForTemplateDeployment != nil {
		v.EnabledForTemplateDeployment = *p.EnabledForTemplateDeployment
	}
	if p.NetworkACLs != nil {
		acls, err := p.NetworkACLs.Normalize()
		if err != nil {
			return badParameter("%s", err)
		}
		v.NetworkACLs = acls
	}
	if p.EnablePurgeProtection != nil {
		if !*p.EnablePurgeProtection && v.EnablePurgeProtection {
			// As on Azure: protection that could be lifted would not
			// protect against whoever could lift it.
			return badParameter("enablePurgeProtection: purge protection is on for vault %s and cannot be turned off", v.Name)
		}
		v.EnablePurgeProtection = *p.EnablePurgeProtection
	}
	return p.applyResource(v)
}

// applyResource sets the vault's location and tags, which Azure keeps
// beside the properties rather than among them.
func (p VaultProperties) applyResource(v *Vault) error {
	if p.Location != nil && *p.Location != "" {
		if v.Location != "" && !strings.EqualFold(v.Location, *p.Location) {
			return badParameter("location: vault %s is in %q and cannot move to %q", v.Name, v.Location, quoteName(*p.Location))
		}
		v.Location = *p.Location
	}
	if p.Tags != nil {
		if err := validateTags(*p.Tags); err != nil {
			return err
		}
		v.Tags = maps.Clone(*p.Tags)
	}
	return nil
}

// CreateVault creates the vault called name (lower-cased: vault names are
// host name labels) in tenantID with Azure's defaults overridden by p. A
// vault of that name is ErrConflict, and so is a deleted one
// (ErrDeletedVaultExists) until it is recovered or purged; a bad name or
// property is ErrBadParameter, and nothing is stored.
func (s *Service) CreateVault(ctx context.Context, name, tenantID string, p VaultProperties) (*Vault, error) {
	if err := ValidateVaultName(name); err != nil {
		return nil, err
	}
	name = strings.ToLower(name)
	v := s.newVault(name, tenantID)
	if err := p.apply(v); err != nil {
		return nil, err
	}
	err := s.store.Update(ctx, func(tx store.Tx) error {
		_, err := loadVault(tx, name)
		switch {
		case err == nil:
			return errorf(ErrConflict, "vault %s already exists", name)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if err := nameHeldByDeleted(tx, name); err != nil {
			return err
		}
		return putJSON(tx, bucketVaults, name, v)
	})
	if err != nil {
		return nil, err
	}
	s.vaultChanged(ctx, name)
	s.log.Info("created vault", "vault", name)
	return v, nil
}

// UpdateVault sets the properties p gives on the vault called name. A bad
// property is ErrBadParameter, and nothing changes.
func (s *Service) UpdateVault(ctx context.Context, name string, p VaultProperties) (*Vault, error) {
	return s.updateVault(ctx, name, p.apply)
}

// AddIPRules adds rules (addresses or CIDR ranges) to the vault's network
// rules, as `az keyvault network-rule add` does; rules already present are
// kept once.
func (s *Service) AddIPRules(ctx context.Context, name string, rules []string) (*Vault, error) {
	return s.updateVault(ctx, name, func(v *Vault) error {
		acls := v.NetworkACLs
		acls.IPRules = slices.Clone(acls.IPRules)
		for _, r := range rules {
			acls.IPRules = append(acls.IPRules, authz.IPRule{Value: r})
		}
		return VaultProperties{NetworkACLs: &acls}.apply(v)
	})
}

// RemoveIPRules removes rules from the vault's network rules. A rule is
// matched after normalizing, so 10.0.0.1 removes 10.0.0.1/32; a rule the
// vault does not have is ErrNotFound.
func (s *Service) RemoveIPRules(ctx context.Context, name string, rules []string) (*Vault, error) {
	return s.updateVault(ctx, name, func(v *Vault) error {
		acls := v.NetworkACLs
		acls.IPRules = slices.Clone(acls.IPRules)
		for i, r := range rules {
			p, err := authz.ParseIPRule(r)
			if err != nil {
				return badParameter("ipRules[%d].value: %s", i, err)
			}
			n := len(acls.IPRules)
			acls.IPRules = slices.DeleteFunc(acls.IPRules, func(x authz.IPRule) bool { return x.Value == p.String() })
			if len(acls.IPRules) == n {
				return errorf(ErrNotFound, "vault %s has no IP rule %s", name, p)
			}
		}
		return VaultProperties{NetworkACLs: &acls}.apply(v)
	})
}

// vaultBuckets lists every bucket that holds a vault's objects. A kind of
// object that adds a bucket must add it here, or PurgeDeletedVault leaves
// its records behind for a later vault of the same name to find.
func vaultBuckets(vault string) []string {
	return []string{
		secretsBucket(vault), versionsBucket(vault), purgeBucket(vault),
		certsBucket(vault), certVersionsBucket(vault), leasesBucket(vault),
		issuersBucket(vault), metaBucket(vault), eventsBucket(vault),
	}
}

// ValidateVaultName checks a vault name against Azure's rule: 3 to 24
// letters, digits and hyphens, starting with a letter, ending with a
// letter or digit, without two hyphens in a row. Such a name is also a
// host name label, which is how clients address the vault.
func ValidateVaultName(name string) error {
	bad := func(why string) error {
		return badParameter("vault name: %q %s", quoteName(name), why)
	}
	if len(name) < 3 || len(name) > 24 {
		return bad("must be 3 to 24 characters long")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		switch {
		case i == 0 && !letter:
			return bad("must start with a letter")
		case letter || c >= '0' && c <= '9':
		case c != '-':
			return bad("may hold only letters, digits and hyphens")
		case i == len(name)-1:
			return bad("must end with a letter or digit")
		case name[i+1] == '-':
			return bad("must not hold two hyphens in a row")
		}
	}
	return nil
}
