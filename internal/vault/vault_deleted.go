package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// Soft-deleted vaults, as Azure keeps them. Deleting a vault moves its
// properties from the vaults bucket to the deleted-vaults bucket and
// leaves its objects where they are, sealed as they were. Everything that
// looks a vault up (the data plane, the renewer, the object purger, event
// streams) then finds nothing, as for a vault that never was, while the
// name stays held; recovery moves the properties back, and purging, on
// request or once the scheduled date has come, removes everything.
//
//	deleted-vaults  {vault}  DeletedVault

const bucketDeletedVaults = "deleted-vaults"

// DeletedVault is a soft-deleted vault: its properties as they were when
// it was deleted, and when it was deleted and will be purged.
type DeletedVault struct {
	Vault              Vault     `json:"vault"`
	DeletionDate       time.Time `json:"deletionDate"`
	ScheduledPurgeDate time.Time `json:"scheduledPurgeDate"`
}

// DeleteVault soft-deletes the vault called name: it stops serving, and
// it and its objects are kept, recoverable with RecoverVault, until its
// retention (softDeleteRetentionInDays) ends and the purger removes them,
// or PurgeDeletedVault does earlier. Until then no vault may take its
// name. The default vault cannot be deleted.
func (s *Service) DeleteVault(ctx context.Context, name string) (*DeletedVault, error) {
	name = strings.ToLower(name)
	if name == DefaultVault {
		return nil, badParameter("vault %s is the default vault, served at the server's bare address, and cannot be deleted", name)
	}
	now := s.now().UTC().Truncate(time.Second)
	var out *DeletedVault
	err := s.store.Update(ctx, func(tx store.Tx) error {
		v, err := loadVault(tx, name)
		if errors.Is(err, ErrNotFound) {
			if d, derr := loadDeleted(tx, name); derr == nil {
				return errorf(ErrNotFound, "vault %s is already deleted; it is purged on %s",
					name, d.ScheduledPurgeDate.Format(time.RFC3339))
			}
		}
		if err != nil {
			return err
		}
		out = &DeletedVault{Vault: *v, DeletionDate: now, ScheduledPurgeDate: now.Add(v.Retention())}
		if err := putJSON(tx, bucketDeletedVaults, name, out); err != nil {
			return err
		}
		return tx.Delete(bucketVaults, name)
	})
	if err != nil {
		return nil, err
	}
	s.vaultChanged(ctx, name)
	s.log.Info("deleted vault", "vault", name, "scheduled_purge_date", out.ScheduledPurgeDate)
	return out, nil
}

// DeletedVault returns the soft-deleted vault called name; a name that is
// not a deleted vault's, a live vault's included, is ErrNotFound.
func (s *Service) DeletedVault(ctx context.Context, name string) (*DeletedVault, error) {
	name = strings.ToLower(name)
	var out *DeletedVault
	err := s.store.View(ctx, func(tx store.Tx) error {
		var err error
		out, err = loadDeletedOrExplain(tx, name)
		if errors.Is(err, ErrConflict) {
			return errorf(ErrNotFound, "deleted vault %s not found: vault %s is not deleted", name, name)
		}
		return err
	})
	return out, err
}

// ListDeletedVaults returns every soft-deleted vault, in name order.
func (s *Service) ListDeletedVaults(ctx context.Context) ([]*DeletedVault, error) {
	var out []*DeletedVault
	err := s.store.View(ctx, func(tx store.Tx) error {
		out = nil
		var decodeErr error
		err := tx.Scan(bucketDeletedVaults, "", "", func(key string, b []byte) bool {
			d := new(DeletedVault)
			if decodeErr = unmarshal(b, d); decodeErr != nil {
				decodeErr = fmt.Errorf("reading deleted vault %s: %w", key, decodeErr)
				return false
			}
			out = append(out, d)
			return true
		})
		if errors.Is(err, store.ErrNotFound) {
			err = nil
		}
		return errors.Join(err, decodeErr)
	})
	return out, err
}

// RecoverVault undoes the soft delete of the vault called name: it serves
// again with everything it had (objects, soft-deleted objects, access
// policies, network rules), and then the properties p gives are set, as a
// create-or-update with Azure's createMode recover does. A name that is
// not a deleted vault's is ErrNotFound, a live vault's ErrConflict; a bad
// property is ErrBadParameter, and the vault stays deleted.
func (s *Service) RecoverVault(ctx context.Context, name string, p VaultProperties) (*Vault, error) {
	name = strings.ToLower(name)
	var out *Vault
	err := s.store.Update(ctx, func(tx store.Tx) error {
		d, err := loadDeletedOrExplain(tx, name)
		if err != nil {
			return err
		}
		v := d.Vault
		if err := p.apply(&v); err != nil {
			return err
		}
		v.Updated = s.now().UTC()
		out = &v
		if err := putJSON(tx, bucketVaults, name, &v); err != nil {
			return err
		}
		return tx.Delete(bucketDeletedVaults, name)
	})
	if err != nil {
		return nil, err
	}
	s.vaultChanged(ctx, name)
	s.notifyEvents(ctx, name)
	s.log.Info("recovered vault", "vault", name)
	return out, nil
}

// PurgeDeletedVault removes the soft-deleted vault called name and every
// object of it for good, and frees its name. It returns the vault as it
// was. A vault with purge protection on is ErrPurgeProtected before its
// scheduled purge date; a name that is not a deleted vault's is
// ErrNotFound, a live vault's ErrConflict.
func (s *Service) PurgeDeletedVault(ctx context.Context, name string) (*DeletedVault, error) {
	name = strings.ToLower(name)
	now := s.now().UTC()
	var out *DeletedVault
	err := s.store.Update(ctx, func(tx store.Tx) error {
		d, err := loadDeletedOrExplain(tx, name)
		if err != nil {
			return err
		}
		if d.Vault.EnablePurgeProtection && now.Before(d.ScheduledPurgeDate) {
			return errorf(ErrPurgeProtected, "Operation \"purge\" is not allowed because purge protection is enabled for vault %s; it is purged automatically on its scheduled purge date, %s",
				name, d.ScheduledPurgeDate.Format(time.RFC3339))
		}
		out = d
		return purgeVault(tx, name)
	})
	if err != nil {
		return nil, err
	}
	s.notifyEvents(ctx, name)
	s.log.Info("purged deleted vault", "vault", name)
	return out, nil
}

// PurgeDueVaults purges every soft-deleted vault whose scheduled purge
// date has come, each in a transaction of its own, and returns how many
// it purged.
func (s *Service) PurgeDueVaults(ctx context.Context) (int, error) {
	deleted, err := s.ListDeletedVaults(ctx)
	if err != nil {
		return 0, err
	}
	now := s.now().UTC()
	purged := 0
	for _, d := range deleted {
		if d.ScheduledPurgeDate.After(now) {
			continue
		}
		name := d.Vault.Name
		err := s.store.Update(ctx, func(tx store.Tx) error {
			// Recovered since the listing, or purged by another replica:
			// nothing to do.
			d, err := loadDeleted(tx, name)
			if errors.Is(err, store.ErrNotFound) || err == nil && d.ScheduledPurgeDate.After(now) {
				return errNothingDue
			}
			if err != nil {
				return err
			}
			return purgeVault(tx, name)
		})
		switch {
		case errors.Is(err, errNothingDue):
		case err != nil:
			return purged, fmt.Errorf("purging deleted vault %s: %w", name, err)
		default:
			purged++
			s.notifyEvents(ctx, name)
			s.log.Info("purged deleted vault after retention", "vault", name)
		}
	}
	return purged, nil
}

// errNothingDue ends a purge transaction that found nothing to purge.
var errNothingDue = errors.New("nothing due")

// purgeVault removes every record of the deleted vault called name.
func purgeVault(tx store.Tx, name string) error {
	for _, b := range vaultBuckets(name) {
		if err := deletePrefix(tx, b, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("purging vault %s: %w", name, err)
		}
	}
	return tx.Delete(bucketDeletedVaults, name)
}

// nameHeldByDeleted refuses name while a soft-deleted vault holds it.
func nameHeldByDeleted(tx store.Tx, name string) error {
	d, err := loadDeleted(tx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	return errorf(ErrDeletedVaultExists,
		"vault name %s is held by a deleted vault until its scheduled purge date, %s: recover it (PUT with properties.createMode recover, or keygate vault recover %s) or purge it (POST /management/deletedVaults/%s/purge, or keygate vault deleted purge %s)",
		name, d.ScheduledPurgeDate.Format(time.RFC3339), name, name, name)
}

// loadDeletedOrExplain loads the deleted vault called name, or says why
// there is none: the vault is live, or there is no such vault at all.
func loadDeletedOrExplain(tx store.Tx, name string) (*DeletedVault, error) {
	d, err := loadDeleted(tx, name)
	if !errors.Is(err, store.ErrNotFound) {
		return d, err
	}
	_, err = loadVault(tx, name)
	switch {
	case err == nil:
		return nil, errorf(ErrConflict, "vault %s is not deleted", name)
	case errors.Is(err, ErrNotFound):
		return nil, errorf(ErrNotFound, "deleted vault %s not found", name)
	default:
		return nil, err
	}
}

// loadDeleted loads the deleted vault called name; store.ErrNotFound when
// there is none.
func loadDeleted(tx store.Tx, name string) (*DeletedVault, error) {
	d := new(DeletedVault)
	if err := getJSON(tx, bucketDeletedVaults, name, d); err != nil {
		return nil, err
	}
	return d, nil
}
