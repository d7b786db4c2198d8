package vault

import (
	"context"
	"errors"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// DeleteCertificate soft-deletes the certificate called name with every
// version, its secret and its key. It stays recoverable for the vault's
// retention period, then is purged.
func (s *Service) DeleteCertificate(ctx context.Context, vault, name string) (DeletedCertificate, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return DeletedCertificate{}, err
	}
	now := s.now().UTC().Truncate(time.Second)
	var out DeletedCertificate
	err = s.store.Update(ctx, func(tx store.Tx) error {
		head, rec, err := loadCertVersion(tx, vault, name, "")
		if err != nil {
			return err
		}
		d := &deletion{Date: now, ScheduledPurge: now.Add(v.Retention())}
		head.Deleted = d
		head.Pending = nil
		if err := putJSON(tx, certsBucket(vault), nameKey(name), head); err != nil {
			return err
		}
		if err := setSecretDeleted(tx, vault, head.Name, d); err != nil {
			return err
		}
		if err := tx.Put(purgeBucket(vault), purgeKey(d.ScheduledPurge, KindCertificate, name), nil); err != nil {
			return err
		}
		if err := recordBoth(tx, vault, EventDeleted, head.Name, now); err != nil {
			return err
		}
		out = deletedCertificate(head, rec, v)
		return nil
	})
	if err == nil {
		s.notifyEvents(ctx, vault)
	}
	return out, err
}

// setSecretDeleted marks a certificate's secret deleted (d) or live (nil).
func setSecretDeleted(tx store.Tx, vault, name string, d *deletion) error {
	sh, err := loadSecretHead(tx, vault, name)
	if err != nil {
		return err
	}
	sh.Deleted = d
	return putJSON(tx, secretsBucket(vault), nameKey(name), sh)
}

// recordBoth records an event of typ for a certificate and its secret.
func recordBoth(tx store.Tx, vault, typ, name string, now time.Time) error {
	for _, kind := range []string{KindCertificate, KindSecret} {
		if err := recordEvent(tx, vault, Event{Time: now, Type: typ, Kind: kind, Name: name}); err != nil {
			return err
		}
	}
	return nil
}

func deletedCertificate(head *certHead, rec *certVersion, v *Vault) DeletedCertificate {
	return DeletedCertificate{
		Certificate:        rec.certificate(head, v),
		DeletedDate:        head.Deleted.Date,
		ScheduledPurgeDate: head.Deleted.ScheduledPurge,
	}
}

// loadDeletedCert loads a soft-deleted certificate with its current
// version.
func loadDeletedCert(tx store.Tx, vault, name string) (*certHead, *certVersion, error) {
	head, err := loadCertHead(tx, vault, name)
	if err != nil {
		return nil, nil, err
	}
	if head.Deleted == nil {
		return nil, nil, errorf(ErrNotFound, "deleted certificate %s not found", head.Name)
	}
	rec := new(certVersion)
	if err := getJSON(tx, certVersionsBucket(vault), versionKey(head.Name, head.Current), rec); err != nil {
		return nil, nil, err
	}
	return head, rec, nil
}

// DeletedCertificate returns the soft-deleted certificate called name.
func (s *Service) DeletedCertificate(ctx context.Context, vault, name string) (DeletedCertificate, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return DeletedCertificate{}, err
	}
	var out DeletedCertificate
	err = s.store.View(ctx, func(tx store.Tx) error {
		head, rec, err := loadDeletedCert(tx, vault, name)
		if err != nil {
			return err
		}
		out = deletedCertificate(head, rec, v)
		return nil
	})
	return out, err
}

// ListDeletedCertificates returns up to max soft-deleted certificates in
// name order, after the cursor after.
func (s *Service) ListDeletedCertificates(ctx context.Context, vault, after string, max int) ([]DeletedCertificate, string, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return nil, "", err
	}
	var (
		items []DeletedCertificate
		next  string
	)
	err = s.store.View(ctx, func(tx store.Tx) error {
		items = nil
		next, err = scanCertHeads(tx, vault, after, max, true, false, func(head *certHead, rec *certVersion) {
			items = append(items, deletedCertificate(head, rec, v))
		})
		return err
	})
	return items, next, err
}

// RecoverCertificate undoes the soft delete of a certificate, its secret
// and its key, and returns its current version.
func (s *Service) RecoverCertificate(ctx context.Context, vault, name string) (Certificate, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return Certificate{}, err
	}
	now := s.now().UTC()
	var out Certificate
	err = s.store.Update(ctx, func(tx store.Tx) error {
		head, rec, err := loadDeletedCert(tx, vault, name)
		if err != nil {
			return err
		}
		if err := tx.Delete(purgeBucket(vault), purgeKey(head.Deleted.ScheduledPurge, KindCertificate, name)); err != nil {
			return err
		}
		head.Deleted = nil
		if err := putJSON(tx, certsBucket(vault), nameKey(name), head); err != nil {
			return err
		}
		if err := setSecretDeleted(tx, vault, head.Name, nil); err != nil {
			return err
		}
		out = rec.certificate(head, v)
		return recordBoth(tx, vault, EventRecovered, head.Name, now)
	})
	if err == nil {
		s.notifyEvents(ctx, vault)
	}
	return out, err
}

// PurgeCertificate permanently removes a soft-deleted certificate, every
// version of it, its secret and its key.
func (s *Service) PurgeCertificate(ctx context.Context, vault, name string) error {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	err = s.store.Update(ctx, func(tx store.Tx) error {
		head, err := loadCertHead(tx, vault, name)
		if err != nil {
			return err
		}
		if head.Deleted == nil {
			return errorf(ErrNotFound, "deleted certificate %s not found", head.Name)
		}
		if err := purgeProtected(v, "certificate", head.Name, head.Deleted, now); err != nil {
			return err
		}
		return purgeCertificate(tx, vault, head, now)
	})
	if err == nil {
		s.notifyEvents(ctx, vault)
	}
	return err
}

func purgeCertificate(tx store.Tx, vault string, head *certHead, now time.Time) error {
	if err := deletePrefix(tx, certVersionsBucket(vault), nameKey(head.Name)+"/"); err != nil {
		return err
	}
	for _, job := range []string{JobCreate, JobRenew, JobNearExpiry, JobExpired} {
		if err := deletePrefix(tx, leasesBucket(vault), job+"/"+nameKey(head.Name)+"/"); err != nil {
			return err
		}
	}
	sh, err := loadSecretHead(tx, vault, head.Name)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	default:
		if sh.Deleted == nil {
			sh.Deleted = head.Deleted
		}
		if err := purgeSecret(tx, vault, sh); err != nil {
			return err
		}
	}
	if err := tx.Delete(purgeBucket(vault), purgeKey(head.Deleted.ScheduledPurge, KindCertificate, head.Name)); err != nil {
		return err
	}
	if err := tx.Delete(certsBucket(vault), nameKey(head.Name)); err != nil {
		return err
	}
	return recordBoth(tx, vault, EventPurged, head.Name, now)
}

func deletePrefix(tx store.Tx, bucket, prefix string) error {
	var keys []string
	err := tx.Scan(bucket, prefix, "", func(key string, _ []byte) bool {
		keys = append(keys, key)
		return true
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.Delete(bucket, k); err != nil {
			return err
		}
	}
	return nil
}

// purgeDueCertificate purges the certificate a due purge entry names.
func purgeDueCertificate(tx store.Tx, vault, key, name string, now time.Time) error {
	head, err := loadCertHead(tx, vault, name)
	if errors.Is(err, ErrNotFound) {
		return tx.Delete(purgeBucket(vault), key)
	}
	if err != nil {
		return err
	}
	if head.Deleted == nil {
		return tx.Delete(purgeBucket(vault), key)
	}
	return purgeCertificate(tx, vault, head, now)
}
