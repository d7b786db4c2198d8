package vault

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/internal/store"
)

var certBackupAAD = []byte("keygate/v1;backup;kind=certificate")

// certBackup is what a certificate's backup blob holds once opened: the
// policy and every version with its private key in plaintext. It exists
// only in memory; the blob is sealed under the backup key.
type certBackup struct {
	Format   int                 `json:"format"`
	Name     string              `json:"name"`
	Current  string              `json:"current"`
	Created  time.Time           `json:"created"`
	Policy   Policy              `json:"policy"`
	Versions []certBackupVersion `json:"versions"`
}

type certBackupVersion struct {
	certVersion
	Key []byte `json:"key"`
}

// BackupCertificate returns a blob holding the certificate's policy and
// every version with its key, encrypted so that only a vault with the
// same master key restores it.
func (s *Service) BackupCertificate(ctx context.Context, vault, name string) ([]byte, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return nil, err
	}
	var b certBackup
	err := s.store.View(ctx, func(tx store.Tx) error {
		head, _, err := loadCertVersion(tx, vault, name, "")
		if err != nil {
			return err
		}
		b = certBackup{Format: 1, Name: head.Name, Current: head.Current, Created: head.Created, Policy: head.Policy}
		return s.collectCertVersions(tx, vault, head.Name, &b)
	})
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(&b)
	if err != nil {
		return nil, fmt.Errorf("encoding backup: %w", err)
	}
	return s.backup.Seal(plain, certBackupAAD)
}

func (s *Service) collectCertVersions(tx store.Tx, vault, name string, b *certBackup) error {
	var openErr error
	err := tx.Scan(certVersionsBucket(vault), nameKey(name)+"/", "", func(_ string, raw []byte) bool {
		var v certBackupVersion
		if openErr = unmarshal(raw, &v.certVersion); openErr != nil {
			return false
		}
		v.Key, openErr = s.sealer.Open(v.SealedKey, certKeyAAD(vault, name, v.Version))
		if openErr != nil {
			openErr = fmt.Errorf("opening key of version %s: %w", v.Version, openErr)
			return false
		}
		v.SealedKey = nil
		b.Versions = append(b.Versions, v)
		return true
	})
	return errors.Join(err, openErr)
}

// RestoreCertificate restores a blob made by BackupCertificate, with its
// secret for every version, and returns the current version. The name
// must not be in use by a certificate or a secret, live or deleted.
func (s *Service) RestoreCertificate(ctx context.Context, vault string, blob []byte) (Certificate, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return Certificate{}, err
	}
	b, err := s.openCertBackup(blob)
	if err != nil {
		return Certificate{}, err
	}
	type pair struct {
		rec *certVersion
		sec *secretVersion
	}
	var (
		pairs   []pair
		current *certVersion
	)
	for i := range b.Versions {
		bv := &b.Versions[i]
		rec, sec, err := s.resealCertVersion(vault, b, bv)
		if err != nil {
			return Certificate{}, err
		}
		pairs = append(pairs, pair{rec, sec})
		if rec.Version == b.Current {
			current = rec
		}
	}
	if current == nil {
		return Certificate{}, badParameter("value: backup does not hold its current version")
	}

	head := &certHead{Name: b.Name, Created: b.Created, Policy: b.Policy}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		_, cerr := loadCertHead(tx, vault, b.Name)
		_, serr := loadSecretHead(tx, vault, b.Name)
		if !errors.Is(cerr, ErrNotFound) || !errors.Is(serr, ErrNotFound) {
			if err := errors.Join(ignoreNotFound(cerr), ignoreNotFound(serr)); err != nil {
				return err
			}
			return errorf(ErrConflict, "certificate or secret %s already exists (live or deleted): delete and purge it before restoring", b.Name)
		}
		h := *head
		for _, p := range pairs {
			if err := s.putVersion(tx, vault, &h, p.rec, p.sec, "restored from backup"); err != nil {
				return err
			}
		}
		h.Current = b.Current
		head = &h
		if err := putJSON(tx, certsBucket(vault), nameKey(b.Name), head); err != nil {
			return err
		}
		sh, err := loadSecretHead(tx, vault, b.Name)
		if err != nil {
			return err
		}
		sh.Current = b.Current
		return putJSON(tx, secretsBucket(vault), nameKey(b.Name), sh)
	})
	if err != nil {
		return Certificate{}, err
	}
	s.notifyEvents(ctx, vault)
	return current.certificate(head, v), nil
}

func ignoreNotFound(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

func (s *Service) openCertBackup(blob []byte) (*certBackup, error) {
	plain, err := s.backup.Open(blob, certBackupAAD)
	if err != nil {
		return nil, badParameter("value: not a certificate backup made by a vault with this master key, or damaged")
	}
	b := new(certBackup)
	if err := json.Unmarshal(plain, b); err != nil || b.Format != 1 {
		return nil, badParameter("value: backup format not recognised")
	}
	if err := ValidateName(b.Name); err != nil {
		return nil, badParameter("value: backup holds an invalid name")
	}
	return b, nil
}

// resealCertVersion rebuilds a version's records for their place in
// vault: its key sealed again, and its secret made again from key and
// chain.
func (s *Service) resealCertVersion(vault string, b *certBackup, bv *certBackupVersion) (*certVersion, *secretVersion, error) {
	if ValidateVersion(bv.Version) != nil {
		return nil, nil, badParameter("value: backup holds an invalid version id")
	}
	key, err := parseSigner(bv.Key)
	if err != nil {
		return nil, nil, badParameter("value: backup holds a damaged key")
	}
	chain, err := parseVersionChain(&bv.certVersion)
	if err != nil {
		return nil, nil, badParameter("value: backup holds a damaged certificate")
	}
	pol := b.Policy
	pol.ContentType, pol.Key.Exportable = bv.ContentType, bv.Exportable
	rec, sec, err := s.prepareVersion(vault, b.Name, bv.Version, key, chain, pol, bv.Created)
	if err != nil {
		return nil, nil, err
	}
	// Keep what the version was, beyond what prepareVersion derives.
	keep := bv.certVersion
	keep.SealedKey = rec.SealedKey
	sec.Enabled, sec.Tags, sec.Updated = keep.Enabled, keep.Tags, keep.Updated
	return &keep, sec, nil
}

func parseVersionChain(rec *certVersion) ([]*x509.Certificate, error) {
	ders := append([][]byte{rec.CER}, rec.Chain...)
	out := make([]*x509.Certificate, 0, len(ders))
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
