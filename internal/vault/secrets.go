package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// Attributes are an object's management attributes. NotBefore and Expires
// are informational for secrets: a read outside the window succeeds, as Key
// Vault's date-time controlled operations allow, and the reader decides
// what an expired value means.
type Attributes struct {
	Enabled   bool
	NotBefore *time.Time
	Expires   *time.Time
	Created   time.Time
	Updated   time.Time
}

// AttributesUpdate changes attributes; a nil field keeps the current value.
type AttributesUpdate struct {
	Enabled   *bool
	NotBefore *time.Time
	Expires   *time.Time
}

// SecretProperties describe one version of a secret, without its value.
type SecretProperties struct {
	Name        string
	Version     string
	ContentType string
	Attributes  Attributes
	Tags        map[string]string

	// Managed is true for the secret that backs a certificate.
	Managed bool

	// RecoverableDays is the vault's soft-delete retention, and
	// RecoveryLevel its Vault.RecoveryLevel.
	RecoverableDays int
	RecoveryLevel   string
}

// Secret is one version of a secret with its value. It redacts the value
// when formatted or logged.
type Secret struct {
	SecretProperties
	Value string
}

// String names the secret and hides its value.
func (s Secret) String() string { return "secret " + s.Name + "/" + s.Version + " (value redacted)" }

// LogValue names the secret and hides its value.
func (s Secret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", s.Name), slog.String("version", s.Version))
}

// DeletedSecret is a soft-deleted secret: the properties of its current
// version and when it was deleted and will be purged.
type DeletedSecret struct {
	SecretProperties
	DeletedDate        time.Time
	ScheduledPurgeDate time.Time
}

// SetSecret is the input of Service.SetSecret.
type SetSecret struct {
	Value       string
	ContentType string
	Attributes  AttributesUpdate
	Tags        map[string]string
}

// String hides the value.
func (SetSecret) String() string { return "SetSecret{value redacted}" }

// SecretUpdate is the input of Service.UpdateSecret. A nil field keeps the
// current value; non-nil Tags replace all tags.
type SecretUpdate struct {
	ContentType *string
	Attributes  AttributesUpdate
	Tags        map[string]string
}

// SetSecret stores a new version of the secret called name, creating the
// secret if it does not exist, and returns the new version's properties.
func (s *Service) SetSecret(ctx context.Context, vault, name string, in SetSecret) (SecretProperties, error) {
	if err := validateSet(name, in); err != nil {
		return SecretProperties{}, err
	}
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return SecretProperties{}, err
	}

	// Seal outside the transaction: it is the costly step and does not
	// depend on what is stored.
	version := newVersion()
	sealed, err := s.sealer.Seal([]byte(in.Value), secretAAD(vault, name, version))
	if err != nil {
		return SecretProperties{}, err
	}
	now := s.now().UTC().Truncate(time.Second)
	rec := &secretVersion{
		Version:     version,
		Created:     now,
		Updated:     now,
		Enabled:     derefOr(in.Attributes.Enabled, true),
		NotBefore:   in.Attributes.NotBefore,
		Expires:     in.Attributes.Expires,
		ContentType: in.ContentType,
		Tags:        in.Tags,
		Sealed:      sealed,
	}

	var head *secretHead
	err = s.store.Update(ctx, func(tx store.Tx) error {
		head, err = loadSecretHead(tx, vault, name)
		switch {
		case errors.Is(err, ErrNotFound):
			head = &secretHead{Name: name, Created: now}
		case err != nil:
			return err
		case head.Deleted != nil:
			return errorf(ErrConflict, "secret %s is deleted but recoverable: recover or purge it before setting a new version", head.Name)
		case head.Managed:
			return managedSecret("set")
		}
		head.Current = version
		if err := putJSON(tx, versionsBucket(vault), versionKey(name, version), rec); err != nil {
			return err
		}
		if err := putJSON(tx, secretsBucket(vault), nameKey(name), head); err != nil {
			return err
		}
		return recordEvent(tx, vault, Event{Time: now, Type: EventNewVersion, Kind: KindSecret, Name: head.Name, Version: version})
	})
	if err != nil {
		return SecretProperties{}, err
	}
	s.notifyEvents(ctx, vault)
	return rec.properties(head.Name, v), nil
}

func validateSet(name string, in SetSecret) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := validateSecretValue(in.Value); err != nil {
		return err
	}
	if err := validateContentType(in.ContentType); err != nil {
		return err
	}
	if err := validateTags(in.Tags); err != nil {
		return err
	}
	return validateAttributes(Attributes{NotBefore: in.Attributes.NotBefore, Expires: in.Attributes.Expires})
}

// GetSecret returns a version of the secret with its value; an empty
// version means the current one. A disabled version is not returned.
func (s *Service) GetSecret(ctx context.Context, vault, name, version string) (Secret, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return Secret{}, err
	}
	var (
		headName string
		rec      secretVersion
	)
	err = s.store.View(ctx, func(tx store.Tx) error {
		headName, rec, err = loadLiveVersion(tx, vault, name, version)
		return err
	})
	if err != nil {
		return Secret{}, err
	}
	if !rec.Enabled {
		return Secret{}, errorf(ErrDisabled, "secret %s version %s is disabled", headName, rec.Version)
	}
	plain, err := s.sealer.Open(rec.Sealed, secretAAD(vault, name, rec.Version))
	if err != nil {
		s.log.Error("opening sealed secret failed", "vault", vault, "name", headName, "version", rec.Version, "err", err)
		return Secret{}, errors.New("opening sealed secret: the stored record does not open under this vault's master key")
	}
	return Secret{SecretProperties: rec.properties(headName, v), Value: string(plain)}, nil
}

// UpdateSecret changes the properties of a version (the current one when
// version is empty) and returns them.
func (s *Service) UpdateSecret(ctx context.Context, vault, name, version string, in SecretUpdate) (SecretProperties, error) {
	if err := validateUpdate(in); err != nil {
		return SecretProperties{}, err
	}
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return SecretProperties{}, err
	}
	var (
		headName string
		rec      secretVersion
	)
	err = s.store.Update(ctx, func(tx store.Tx) error {
		headName, rec, err = loadLiveVersion(tx, vault, name, version)
		if err != nil {
			return err
		}
		if err := refuseManaged(tx, vault, name, "update"); err != nil {
			return err
		}
		now := s.now().UTC().Truncate(time.Second)
		rec.apply(in, now)
		if err := validateAttributes(Attributes{NotBefore: rec.NotBefore, Expires: rec.Expires}); err != nil {
			return err
		}
		if err := putJSON(tx, versionsBucket(vault), versionKey(name, rec.Version), &rec); err != nil {
			return err
		}
		return recordEvent(tx, vault, Event{Time: now, Type: EventUpdated, Kind: KindSecret, Name: headName,
			Version: rec.Version, Detail: fmt.Sprintf("enabled=%t", rec.Enabled)})
	})
	if err != nil {
		return SecretProperties{}, err
	}
	s.notifyEvents(ctx, vault)
	return rec.properties(headName, v), nil
}

func validateUpdate(in SecretUpdate) error {
	if in.ContentType != nil {
		if err := validateContentType(*in.ContentType); err != nil {
			return err
		}
	}
	if in.Tags != nil {
		return validateTags(in.Tags)
	}
	return nil
}

func (r *secretVersion) apply(in SecretUpdate, now time.Time) {
	if in.ContentType != nil {
		r.ContentType = *in.ContentType
	}
	if in.Attributes.Enabled != nil {
		r.Enabled = *in.Attributes.Enabled
	}
	if in.Attributes.NotBefore != nil {
		r.NotBefore = in.Attributes.NotBefore
	}
	if in.Attributes.Expires != nil {
		r.Expires = in.Attributes.Expires
	}
	if in.Tags != nil {
		r.Tags = maps.Clone(in.Tags)
	}
	r.Updated = now
}

// ListSecrets returns up to max live secrets, each with the properties of
// its current version, in name order, starting after the cursor after.
// next is the cursor for the following page, empty on the last one.
func (s *Service) ListSecrets(ctx context.Context, vault, after string, max int) (items []SecretProperties, next string, err error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return nil, "", err
	}
	err = s.store.View(ctx, func(tx store.Tx) error {
		items = nil
		next, err = scanHeads(tx, vault, after, max, false, func(head *secretHead, rec *secretVersion) {
			items = append(items, rec.properties(head.Name, v))
		})
		return err
	})
	return items, next, err
}

// scanHeads calls emit with up to max secrets after the cursor after that
// are deleted or live, as deleted says, each with its current version. It
// returns the cursor of the next page, empty on the last one.
func scanHeads(tx store.Tx, vault, after string, max int, deleted bool, emit func(*secretHead, *secretVersion)) (string, error) {
	var (
		n, next string
		count   int
		scanErr error
	)
	err := tx.Scan(secretsBucket(vault), "", after, func(key string, raw []byte) bool {
		if count == max {
			next = n
			return false
		}
		var head secretHead
		if scanErr = unmarshal(raw, &head); scanErr != nil {
			return false
		}
		if (head.Deleted != nil) != deleted {
			return true
		}
		var rec secretVersion
		if scanErr = getJSON(tx, versionsBucket(vault), versionKey(head.Name, head.Current), &rec); scanErr != nil {
			return false
		}
		emit(&head, &rec)
		n = key
		count++
		return true
	})
	return next, errors.Join(err, scanErr)
}

// ListSecretVersions returns up to max versions of the secret called name,
// in version order, starting after the version after.
func (s *Service) ListSecretVersions(ctx context.Context, vault, name, after string, max int) (items []SecretProperties, next string, err error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return nil, "", err
	}
	err = s.store.View(ctx, func(tx store.Tx) error {
		items, next = nil, ""
		head, err := loadSecretHead(tx, vault, name)
		if err != nil {
			return err
		}
		if head.Deleted != nil {
			return secretNotFound(head.Name)
		}
		next, err = scanVersions(tx, versionsBucket(vault), name, after, max, func(rec *secretVersion) {
			items = append(items, rec.properties(head.Name, v))
		})
		return err
	})
	return items, next, err
}

// scanVersions calls emit with up to max version records of the object
// called name in bucket, in version order, after the version after. It
// returns the version to continue after, empty on the last page.
func scanVersions[R any](tx store.Tx, bucket, name, after string, max int, emit func(*R)) (string, error) {
	prefix := nameKey(name) + "/"
	start := ""
	if after != "" {
		start = prefix + after
	}
	var (
		count      int
		last, next string
		scanErr    error
	)
	err := tx.Scan(bucket, prefix, start, func(key string, raw []byte) bool {
		if count == max {
			next = last
			return false
		}
		rec := new(R)
		if scanErr = unmarshal(raw, rec); scanErr != nil {
			return false
		}
		emit(rec)
		last = strings.TrimPrefix(key, prefix)
		count++
		return true
	})
	return next, errors.Join(err, scanErr)
}

func (r *secretVersion) properties(name string, v *Vault) SecretProperties {
	return SecretProperties{
		Name:        name,
		Version:     r.Version,
		ContentType: r.ContentType,
		Attributes: Attributes{
			Enabled:   r.Enabled,
			NotBefore: r.NotBefore,
			Expires:   r.Expires,
			Created:   r.Created,
			Updated:   r.Updated,
		},
		Tags:            r.Tags,
		Managed:         r.Managed,
		RecoverableDays: int(v.Retention() / (24 * time.Hour)),
		RecoveryLevel:   v.RecoveryLevel(),
	}
}

func loadSecretHead(tx store.Tx, vault, name string) (*secretHead, error) {
	head := new(secretHead)
	if err := getJSON(tx, secretsBucket(vault), nameKey(name), head); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, secretNotFound(name)
		}
		return nil, err
	}
	return head, nil
}

// loadLiveVersion loads a version of a secret that is not deleted; an empty
// version means the current one.
func loadLiveVersion(tx store.Tx, vault, name, version string) (string, secretVersion, error) {
	var rec secretVersion
	head, err := loadSecretHead(tx, vault, name)
	if err != nil {
		return "", rec, err
	}
	if head.Deleted != nil {
		return "", rec, secretNotFound(head.Name)
	}
	if version == "" {
		version = head.Current
	}
	err = getJSON(tx, versionsBucket(vault), versionKey(name, version), &rec)
	if errors.Is(err, store.ErrNotFound) {
		return "", rec, errorf(ErrNotFound, "secret %s has no version %s", head.Name, quoteName(version))
	}
	return head.Name, rec, err
}

// refuseManaged refuses op on the secret called name if it is a
// certificate's.
func refuseManaged(tx store.Tx, vault, name, op string) error {
	head, err := loadSecretHead(tx, vault, name)
	if err != nil {
		return err
	}
	if head.Managed {
		return managedSecret(op)
	}
	return nil
}

func secretNotFound(name string) error {
	return errorf(ErrNotFound, "secret %s not found", quoteName(name))
}

func derefOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
