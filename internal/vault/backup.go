package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// backupAAD binds a backup blob to its kind, so a secret's blob does not
// restore as anything else.
var secretBackupAAD = []byte("keygate/v1;backup;kind=secret")

// secretBackup is what a secret's backup blob holds once opened: every
// version with its value in plaintext. It exists only in memory; the blob is
// sealed under the backup key.
type secretBackup struct {
	Format   int                   `json:"format"`
	Name     string                `json:"name"`
	Current  string                `json:"current"`
	Created  time.Time             `json:"created"`
	Versions []secretBackupVersion `json:"versions"`
}

type secretBackupVersion struct {
	secretVersion
	Value []byte `json:"value"`
}

// BackupSecret returns a blob holding every version of the secret called
// name, encrypted and integrity-protected so that only a vault with the
// same master key restores it.
func (s *Service) BackupSecret(ctx context.Context, vault, name string) ([]byte, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return nil, err
	}
	var b secretBackup
	err := s.store.View(ctx, func(tx store.Tx) error {
		head, err := loadSecretHead(tx, vault, name)
		if err != nil {
			return err
		}
		if head.Deleted != nil {
			return secretNotFound(head.Name)
		}
		if head.Managed {
			return managedSecret("backup")
		}
		b = secretBackup{Format: 1, Name: head.Name, Current: head.Current, Created: head.Created}
		return s.collectVersions(tx, vault, head.Name, &b)
	})
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(&b)
	if err != nil {
		return nil, fmt.Errorf("encoding backup: %w", err)
	}
	return s.backup.Seal(plain, secretBackupAAD)
}

func (s *Service) collectVersions(tx store.Tx, vault, name string, b *secretBackup) error {
	var openErr error
	err := tx.Scan(versionsBucket(vault), nameKey(name)+"/", "", func(_ string, raw []byte) bool {
		var v secretBackupVersion
		if openErr = unmarshal(raw, &v.secretVersion); openErr != nil {
			return false
		}
		v.Value, openErr = s.sealer.Open(v.Sealed, secretAAD(vault, name, v.Version))
		if openErr != nil {
			openErr = fmt.Errorf("opening version %s: %w", v.Version, openErr)
			return false
		}
		v.Sealed = nil
		b.Versions = append(b.Versions, v)
		return true
	})
	return errors.Join(err, openErr)
}

// RestoreSecret restores a blob made by BackupSecret into vault, with every
// version it holds, and returns the current version's properties. The name
// must not be in use, live or soft-deleted.
func (s *Service) RestoreSecret(ctx context.Context, vault string, blob []byte) (SecretProperties, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return SecretProperties{}, err
	}
	b, err := s.openSecretBackup(blob)
	if err != nil {
		return SecretProperties{}, err
	}
	recs, current, err := s.resealVersions(vault, b)
	if err != nil {
		return SecretProperties{}, err
	}

	err = s.store.Update(ctx, func(tx store.Tx) error {
		if _, err := loadSecretHead(tx, vault, b.Name); !errors.Is(err, ErrNotFound) {
			if err != nil {
				return err
			}
			return errorf(ErrConflict, "secret %s already exists (live or deleted): delete and purge it before restoring", b.Name)
		}
		for _, rec := range recs {
			if err := putJSON(tx, versionsBucket(vault), versionKey(b.Name, rec.Version), rec); err != nil {
				return err
			}
		}
		head := &secretHead{Name: b.Name, Current: b.Current, Created: b.Created}
		if err := putJSON(tx, secretsBucket(vault), nameKey(b.Name), head); err != nil {
			return err
		}
		return recordEvent(tx, vault, Event{Time: s.now().UTC(), Type: EventNewVersion, Kind: KindSecret,
			Name: b.Name, Version: b.Current, Detail: "restored from backup"})
	})
	if err != nil {
		return SecretProperties{}, err
	}
	s.notifyEvents(ctx, vault)
	return current.properties(b.Name, v), nil
}

func (s *Service) openSecretBackup(blob []byte) (*secretBackup, error) {
	plain, err := s.backup.Open(blob, secretBackupAAD)
	if err != nil {
		return nil, badParameter("value: not a secret backup made by a vault with this master key, or damaged")
	}
	b := new(secretBackup)
	if err := json.Unmarshal(plain, b); err != nil || b.Format != 1 {
		return nil, badParameter("value: backup format not recognised")
	}
	if err := ValidateName(b.Name); err != nil {
		return nil, badParameter("value: backup holds an invalid name")
	}
	return b, nil
}

// resealVersions seals each version's value for its place in vault.
func (s *Service) resealVersions(vault string, b *secretBackup) ([]*secretVersion, *secretVersion, error) {
	var (
		recs    []*secretVersion
		current *secretVersion
	)
	for i := range b.Versions {
		bv := &b.Versions[i]
		if ValidateVersion(bv.Version) != nil {
			return nil, nil, badParameter("value: backup holds an invalid version id")
		}
		sealed, err := s.sealer.Seal(bv.Value, secretAAD(vault, b.Name, bv.Version))
		if err != nil {
			return nil, nil, err
		}
		rec := bv.secretVersion
		rec.Sealed = sealed
		recs = append(recs, &rec)
		if rec.Version == b.Current {
			current = &rec
		}
	}
	if current == nil {
		return nil, nil, badParameter("value: backup does not hold its current version")
	}
	return recs, current, nil
}
