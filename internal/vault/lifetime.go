package vault

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/internal/issuer"
	"github.com/keygate/keygate/internal/store"
)

// Kinds of certificate job a scheduler runs.
const (
	JobCreate     = "create"
	JobRenew      = "renew"
	JobNearExpiry = "near-expiry"
	JobExpired    = "expired"
)

// Job is work due on a certificate: a creation to complete (Ref is its
// request id), or a lifetime action on a version (Ref is the version).
type Job struct {
	Vault string
	Kind  string
	Name  string
	Ref   string
}

// LeaseKey names the job's lease: one holder at a time runs it.
func (j Job) LeaseKey() string { return j.Kind + "/" + nameKey(j.Name) + "/" + j.Ref }

// String describes the job for logs.
func (j Job) String() string { return fmt.Sprintf("%s %s/%s@%s", j.Kind, j.Vault, j.Name, j.Ref) }

// DueJobs lists the certificate jobs of vault due at the vault's clock:
// creations in progress that have no result yet, and the lifetime actions
// of each certificate's current version that have fallen due and not run.
func (s *Service) DueJobs(ctx context.Context, vault string) ([]Job, error) {
	now := s.now().UTC()
	var jobs []Job
	err := s.store.View(ctx, func(tx store.Tx) error {
		jobs = nil
		var scanErr error
		err := tx.Scan(certsBucket(vault), "", "", func(_ string, raw []byte) bool {
			var head certHead
			if scanErr = unmarshal(raw, &head); scanErr != nil {
				return false
			}
			var more []Job
			more, scanErr = dueFor(tx, vault, &head, now)
			jobs = append(jobs, more...)
			return scanErr == nil
		})
		return errors.Join(err, scanErr)
	})
	return jobs, err
}

func dueFor(tx store.Tx, vault string, head *certHead, now time.Time) ([]Job, error) {
	if head.Deleted != nil {
		return nil, nil
	}
	var jobs []Job
	if p := head.Pending; p != nil && p.Status == StatusInProgress && p.SealedKey == nil {
		jobs = append(jobs, Job{Vault: vault, Kind: JobCreate, Name: head.Name, Ref: p.RequestID})
	}
	if head.Current == "" {
		return jobs, nil
	}
	var rec certVersion
	if err := getJSON(tx, certVersionsBucket(vault), versionKey(head.Name, head.Current), &rec); err != nil {
		return nil, err
	}
	job := func(kind string) Job { return Job{Vault: vault, Kind: kind, Name: head.Name, Ref: rec.Version} }
	if !now.Before(rec.Expires) && !rec.ExpiryNoted {
		jobs = append(jobs, job(JobExpired))
	}
	for _, a := range head.Policy.LifetimeActions {
		if now.Before(a.DueAt(rec.NotBefore, rec.Expires)) {
			continue
		}
		switch {
		case a.Action == ActionEmailContacts && !rec.NearExpiryNoted:
			jobs = append(jobs, job(JobNearExpiry))
		case a.Action == ActionAutoRenew && !pendingInProgress(head):
			jobs = append(jobs, job(JobRenew))
		}
	}
	return jobs, nil
}

func pendingInProgress(h *certHead) bool {
	return h.Pending != nil && h.Pending.Status == StatusInProgress
}

// lease is who runs a job until when.
type lease struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// ClaimJob gives holder the job for ttl unless another holder's lease is
// still running, and reports whether holder got it. The check and the
// write are one transaction, so of several processes sharing the store
// one at a time wins.
func (s *Service) ClaimJob(ctx context.Context, j Job, holder string, ttl time.Duration) (bool, error) {
	now := s.now().UTC()
	won := false
	err := s.store.Update(ctx, func(tx store.Tx) error {
		won = false
		var l lease
		err := getJSON(tx, leasesBucket(j.Vault), j.LeaseKey(), &l)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		case l.Holder != holder && now.Before(l.Expires):
			return nil
		}
		won = true
		return putJSON(tx, leasesBucket(j.Vault), j.LeaseKey(), &lease{Holder: holder, Expires: now.Add(ttl)})
	})
	return won, err
}

// HoldJob reserves the job for d from now as a back-off after holder's
// attempt failed: no one, holder included, retries before then.
func (s *Service) HoldJob(ctx context.Context, j Job, holder string, d time.Duration) error {
	until := s.now().UTC().Add(d)
	return s.store.Update(ctx, func(tx store.Tx) error {
		return putJSON(tx, leasesBucket(j.Vault), j.LeaseKey(), &lease{Holder: "back-off after " + holder, Expires: until})
	})
}

// ReleaseJob drops holder's lease on a finished job.
func (s *Service) ReleaseJob(ctx context.Context, j Job, holder string) error {
	return s.store.Update(ctx, func(tx store.Tx) error {
		var l lease
		err := getJSON(tx, leasesBucket(j.Vault), j.LeaseKey(), &l)
		if errors.Is(err, store.ErrNotFound) || (err == nil && l.Holder != holder) {
			return nil
		}
		if err != nil {
			return err
		}
		return tx.Delete(leasesBucket(j.Vault), j.LeaseKey())
	})
}

// RunJob does a job. Renewals make a new version; notices record an event
// once. A job that is no longer due (done elsewhere, version replaced)
// does nothing.
func (s *Service) RunJob(ctx context.Context, j Job) error {
	switch j.Kind {
	case JobCreate:
		return s.CompleteCreation(ctx, j.Vault, j.Name, j.Ref)
	case JobRenew:
		return s.RenewCertificate(ctx, j.Vault, j.Name, j.Ref)
	case JobNearExpiry, JobExpired:
		return s.noteLifetime(ctx, j)
	}
	return fmt.Errorf("running job: unknown kind %q", j.Kind)
}

// noteLifetime records a near-expiry (EmailContacts) or expiry event for
// a version, once: the mark on the version and the event are written in
// one transaction.
func (s *Service) noteLifetime(ctx context.Context, j Job) error {
	now := s.now().UTC()
	recorded := false
	err := s.store.Update(ctx, func(tx store.Tx) error {
		recorded = false
		head, rec, err := loadCertVersion(tx, j.Vault, j.Name, j.Ref)
		if err != nil {
			return err
		}
		e := Event{Time: now, Kind: KindCertificate, Name: head.Name, Version: rec.Version}
		switch {
		case j.Kind == JobNearExpiry && !rec.NearExpiryNoted:
			rec.NearExpiryNoted = true
			e.Type = EventNearExpiry
			e.Detail = "expires " + rec.Expires.Format(time.RFC3339) + "; EmailContacts (recorded, no mail is sent)"
		case j.Kind == JobExpired && !rec.ExpiryNoted:
			rec.ExpiryNoted = true
			e.Type = EventExpired
			e.Detail = "expired " + rec.Expires.Format(time.RFC3339)
		default:
			return nil
		}
		if err := putJSON(tx, certVersionsBucket(j.Vault), versionKey(head.Name, rec.Version), rec); err != nil {
			return err
		}
		recorded = true
		return recordEvent(tx, j.Vault, e)
	})
	if err == nil && recorded {
		s.notifyEvents(ctx, j.Vault)
		s.log.Info("certificate lifetime event", "vault", j.Vault, "name", j.Name, "version", j.Ref, "event", j.Kind)
	}
	return err
}

// RenewCertificate makes a new version of a certificate by its policy, to
// follow version from. It does nothing when from is no longer the
// current version (renewed already, by this process or another). A
// failure is recorded as a renewal_failed event.
func (s *Service) RenewCertificate(ctx context.Context, vault, name, from string) error {
	err := s.renew(ctx, vault, name, from)
	if err == nil {
		return nil
	}
	now := s.now().UTC()
	msg := "the vault failed to renew the certificate"
	var ve *Error
	if errors.As(err, &ve) {
		msg = ve.Message
	}
	recErr := s.store.Update(ctx, func(tx store.Tx) error {
		return recordEvent(tx, vault, Event{Time: now, Type: EventRenewalFailed, Kind: KindCertificate,
			Name: name, Version: from, Detail: msg})
	})
	s.notifyEvents(ctx, vault)
	return errors.Join(err, recErr)
}

func (s *Service) renew(ctx context.Context, vault, name, from string) error {
	// What to renew, and with what.
	var (
		head  *certHead
		is    issuer.Issuer
		reuse crypto.Signer
	)
	err := s.store.View(ctx, func(tx store.Tx) error {
		h, rec, err := loadCertVersion(tx, vault, name, "")
		if err != nil || rec.Version != from || pendingInProgress(h) {
			return err
		}
		if is, err = s.resolveIssuer(tx, vault, h.Policy.Issuer.Name); err != nil {
			return err
		}
		if !is.CanRenew() {
			return badParameter("issuer %s cannot renew certificates; merge a new version instead", h.Policy.Issuer.Name)
		}
		if h.Policy.Key.ReuseKey {
			if reuse, err = s.openCertKey(vault, h.Name, rec); err != nil {
				return err
			}
		}
		head = h
		return nil
	})
	if err != nil || head == nil {
		return err
	}

	// The new version, made outside the transaction.
	key, err := s.keyFor(head.Policy, reuse)
	if err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Second)
	chain, err := s.issue(is, head.Policy, key, now)
	if err != nil {
		return err
	}
	rec, sec, err := s.prepareVersion(vault, head.Name, newVersion(), key, chain, head.Policy, now)
	if err != nil {
		return err
	}

	// Stored only if from is still current: another process may have
	// renewed meanwhile.
	committed := false
	err = s.store.Update(ctx, func(tx store.Tx) error {
		committed = false
		cur, err := loadLiveCertHead(tx, vault, name)
		if err != nil || cur.Current != from || pendingInProgress(cur) {
			return err
		}
		if err := s.putVersion(tx, vault, cur, rec, sec, "renewed"); err != nil {
			return err
		}
		committed = true
		return recordEvent(tx, vault, Event{Time: now, Type: EventRenewed, Kind: KindCertificate,
			Name: cur.Name, Version: rec.Version, Detail: "renewed from version " + from})
	})
	if err == nil && committed {
		s.notifyEvents(ctx, vault)
		s.log.Info("certificate renewed", "vault", vault, "name", head.Name, "from_version", from,
			"to_version", rec.Version, "serial", chain[0].SerialNumber.Text(16), "expires", rec.Expires)
	}
	return err
}
