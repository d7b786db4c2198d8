package vault

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// DeleteSecret soft-deletes the secret called name with all its versions.
// It stays recoverable for the vault's retention period, then is purged.
func (s *Service) DeleteSecret(ctx context.Context, vault, name string) (DeletedSecret, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return DeletedSecret{}, err
	}
	now := s.now().UTC().Truncate(time.Second)
	var out DeletedSecret
	err = s.store.Update(ctx, func(tx store.Tx) error {
		head, rec, err := loadHeadAndCurrent(tx, vault, name)
		if err != nil {
			return err
		}
		if head.Deleted != nil {
			return secretNotFound(head.Name)
		}
		if head.Managed {
			return managedSecret("delete")
		}
		head.Deleted = &deletion{Date: now, ScheduledPurge: now.Add(v.Retention())}
		if err := putJSON(tx, secretsBucket(vault), nameKey(name), head); err != nil {
			return err
		}
		if err := tx.Put(purgeBucket(vault), purgeKey(head.Deleted.ScheduledPurge, "secret", name), nil); err != nil {
			return err
		}
		out = deletedSecret(head, rec, v)
		return recordEvent(tx, vault, Event{Time: now, Type: EventDeleted, Kind: KindSecret, Name: head.Name})
	})
	if err == nil {
		s.notifyEvents(ctx, vault)
	}
	return out, err
}

// DeletedSecret returns the soft-deleted secret called name.
func (s *Service) DeletedSecret(ctx context.Context, vault, name string) (DeletedSecret, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return DeletedSecret{}, err
	}
	var out DeletedSecret
	err = s.store.View(ctx, func(tx store.Tx) error {
		head, rec, err := loadHeadAndCurrent(tx, vault, name)
		if err != nil {
			return err
		}
		if head.Deleted == nil {
			return errorf(ErrNotFound, "deleted secret %s not found", head.Name)
		}
		out = deletedSecret(head, rec, v)
		return nil
	})
	return out, err
}

// ListDeletedSecrets returns up to max soft-deleted secrets in name order,
// starting after the cursor after.
func (s *Service) ListDeletedSecrets(ctx context.Context, vault, after string, max int) (items []DeletedSecret, next string, err error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return nil, "", err
	}
	err = s.store.View(ctx, func(tx store.Tx) error {
		items = nil
		next, err = scanHeads(tx, vault, after, max, true, func(head *secretHead, rec *secretVersion) {
			items = append(items, deletedSecret(head, *rec, v))
		})
		return err
	})
	return items, next, err
}

// RecoverSecret undoes the soft delete of the secret called name and
// returns the properties of its current version.
func (s *Service) RecoverSecret(ctx context.Context, vault, name string) (SecretProperties, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return SecretProperties{}, err
	}
	var out SecretProperties
	err = s.store.Update(ctx, func(tx store.Tx) error {
		head, rec, err := loadHeadAndCurrent(tx, vault, name)
		if err != nil {
			return err
		}
		if head.Deleted == nil {
			return errorf(ErrNotFound, "deleted secret %s not found", head.Name)
		}
		if head.Managed {
			return managedSecret("recover")
		}
		if err := tx.Delete(purgeBucket(vault), purgeKey(head.Deleted.ScheduledPurge, "secret", name)); err != nil {
			return err
		}
		head.Deleted = nil
		out = rec.properties(head.Name, v)
		if err := putJSON(tx, secretsBucket(vault), nameKey(name), head); err != nil {
			return err
		}
		return recordEvent(tx, vault, Event{Time: s.now().UTC(), Type: EventRecovered, Kind: KindSecret, Name: head.Name})
	})
	if err == nil {
		s.notifyEvents(ctx, vault)
	}
	return out, err
}

// PurgeSecret permanently removes the soft-deleted secret called name and
// every version of it.
func (s *Service) PurgeSecret(ctx context.Context, vault, name string) error {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	err = s.store.Update(ctx, func(tx store.Tx) error {
		head, err := loadSecretHead(tx, vault, name)
		if err != nil {
			return err
		}
		if head.Deleted == nil {
			return errorf(ErrNotFound, "deleted secret %s not found", head.Name)
		}
		if head.Managed {
			return managedSecret("purge")
		}
		if err := purgeProtected(v, "secret", head.Name, head.Deleted, now); err != nil {
			return err
		}
		if err := purgeSecret(tx, vault, head); err != nil {
			return err
		}
		return recordEvent(tx, vault, Event{Time: now, Type: EventPurged, Kind: KindSecret, Name: head.Name})
	})
	if err == nil {
		s.notifyEvents(ctx, vault)
	}
	return err
}

func purgeSecret(tx store.Tx, vault string, head *secretHead) error {
	var keys []string
	err := tx.Scan(versionsBucket(vault), nameKey(head.Name)+"/", "", func(key string, _ []byte) bool {
		keys = append(keys, key)
		return true
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.Delete(versionsBucket(vault), k); err != nil {
			return err
		}
	}
	if err := tx.Delete(purgeBucket(vault), purgeKey(head.Deleted.ScheduledPurge, "secret", head.Name)); err != nil {
		return err
	}
	return tx.Delete(secretsBucket(vault), nameKey(head.Name))
}

// PurgeDue purges every soft-deleted object of vault whose retention ended
// at or before now, and returns how many it purged.
func (s *Service) PurgeDue(ctx context.Context, vault string) (int, error) {
	now := s.now().UTC()
	limit := purgeKey(now, "", "")
	purged := 0
	err := s.store.Update(ctx, func(tx store.Tx) error {
		purged = 0
		var due []string
		err := tx.Scan(purgeBucket(vault), "", "", func(key string, _ []byte) bool {
			if key > limit {
				return false
			}
			due = append(due, key)
			return true
		})
		if err != nil {
			return err
		}
		for _, key := range due {
			if err := purgeOne(tx, vault, key, now); err != nil {
				return err
			}
			purged++
		}
		return nil
	})
	if err == nil && purged > 0 {
		s.notifyEvents(ctx, vault)
	}
	return purged, err
}

func purgeOne(tx store.Tx, vault, key string, now time.Time) error {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) == 3 && parts[1] == KindCertificate {
		return purgeDueCertificate(tx, vault, key, parts[2], now)
	}
	if len(parts) != 3 || parts[1] != "secret" {
		// An entry this version does not know how to purge: leave it for
		// a version that does rather than lose track of it.
		return nil
	}
	head, err := loadSecretHead(tx, vault, parts[2])
	if errors.Is(err, ErrNotFound) {
		return tx.Delete(purgeBucket(vault), key)
	}
	if err != nil {
		return err
	}
	if head.Deleted == nil {
		return tx.Delete(purgeBucket(vault), key)
	}
	if err := purgeSecret(tx, vault, head); err != nil {
		return err
	}
	return recordEvent(tx, vault, Event{Time: now, Type: EventPurged, Kind: KindSecret, Name: head.Name})
}

// purgeProtected refuses to purge a deleted object of v early when v has
// purge protection on; the purger still removes it when its date comes.
func purgeProtected(v *Vault, kind, name string, d *deletion, now time.Time) error {
	if !v.EnablePurgeProtection || !now.Before(d.ScheduledPurge) {
		return nil
	}
	return errorf(ErrPurgeProtected, "Operation \"purge\" is not allowed because purge protection is enabled for vault %s: deleted %s %s is purged automatically on its scheduled purge date, %s",
		v.Name, kind, name, d.ScheduledPurge.Format(time.RFC3339))
}

func loadHeadAndCurrent(tx store.Tx, vault, name string) (*secretHead, secretVersion, error) {
	var rec secretVersion
	head, err := loadSecretHead(tx, vault, name)
	if err != nil {
		return nil, rec, err
	}
	err = getJSON(tx, versionsBucket(vault), versionKey(name, head.Current), &rec)
	return head, rec, err
}

func deletedSecret(head *secretHead, rec secretVersion, v *Vault) DeletedSecret {
	return DeletedSecret{
		SecretProperties:   rec.properties(head.Name, v),
		DeletedDate:        head.Deleted.Date,
		ScheduledPurgeDate: head.Deleted.ScheduledPurge,
	}
}

// RunPurger purges the due soft-deleted vaults, and the due soft-deleted
// objects of every live vault, each interval until ctx is done. Objects
// that come due while their vault is deleted go at the first run after
// it is recovered. Failures are logged and retried next time.
func (s *Service) RunPurger(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.purgeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) purgeAll(ctx context.Context) {
	if _, err := s.PurgeDueVaults(ctx); err != nil {
		s.log.Warn("purging deleted vaults failed", "err", err)
	}
	vaults, err := s.VaultNames(ctx)
	if err != nil {
		s.log.Warn("listing vaults for purge failed", "err", err)
		return
	}
	for _, name := range vaults {
		if n, err := s.PurgeDue(ctx, name); err != nil {
			s.log.Warn("purging deleted objects failed", "vault", name, "err", err)
		} else if n > 0 {
			s.log.Info("purged deleted objects after retention", "vault", name, "count", n)
		}
		if n, err := s.PruneEvents(ctx, name, s.now().Add(-DefaultEventRetention)); err != nil {
			s.log.Warn("pruning old events failed", "vault", name, "err", err)
		} else if n > 0 {
			s.log.Debug("pruned old events", "vault", name, "count", n)
		}
	}
}
