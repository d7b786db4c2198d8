package identity

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// Signing key rotation, coordinated through the store so that several
// vault processes on one database agree:
//
//  1. RotateSigningKey (or Run, when Config.KeyRotationInterval says a
//     rotation is due) appends a new key that activates a little later.
//     Until then every process publishes it and accepts tokens it signs,
//     but none signs with it; each learns of it through the store's
//     notifications at once, or at its next reload at the latest.
//  2. From its activation the new key signs in every process.
//  3. A key that no longer signs is retired (deleted) once every token it
//     signed has expired: a token lifetime, plus leeway, after its
//     successor activated.

// DefaultKeyActivationDelay is how long a new signing key is published
// before it signs: longer than the reload interval, so every process has
// it before any token signed by it reaches one.
const DefaultKeyActivationDelay = 5 * time.Minute

// keyReloadInterval is how often Run re-reads the keys when no
// notification came.
const keyReloadInterval = time.Minute

// retirementLeeway covers clock skew between processes and verifiers.
const retirementLeeway = 5 * time.Minute

// keysTopic is the store.Notifier topic woken after the keys change.
const keysTopic = "identity/signing-keys"

// SigningKeyInfo describes a signing key; it holds no key material.
type SigningKeyInfo struct {
	KID       string    `json:"kid"`
	Created   time.Time `json:"created"`
	Activates time.Time `json:"activates"`
	Active    bool      `json:"active"` // signs new tokens now
}

// SigningKeys describes the signing keys, oldest first.
func (a *Authority) SigningKeys() ([]SigningKeyInfo, error) {
	st, err := a.current()
	if err != nil {
		return nil, err
	}
	active := st.keys.active(a.cfg.Now())
	out := make([]SigningKeyInfo, 0, len(st.keys))
	for _, k := range st.keys {
		out = append(out, SigningKeyInfo{KID: k.kid, Created: k.created, Activates: k.activeFrom(), Active: k == active})
	}
	return out, nil
}

// RotateSigningKey adds a new signing key that signs from delay after now
// (DefaultKeyActivationDelay when delay is negative), retires the keys
// whose tokens have all expired, and returns the new key.
func (a *Authority) RotateSigningKey(ctx context.Context, delay time.Duration) (SigningKeyInfo, error) {
	if delay < 0 {
		delay = DefaultKeyActivationDelay
	}
	info, _, err := a.rotate(ctx, delay, func([]keyRecord) bool { return true })
	return info, err
}

// rotateIfDue rotates when the newest key is older than the rotation
// interval. The check is repeated inside the transaction, so of several
// processes finding a rotation due, one makes it.
func (a *Authority) rotateIfDue(ctx context.Context) error {
	every := a.cfg.KeyRotationInterval
	if every <= 0 {
		return nil
	}
	due := func(recs []keyRecord) bool {
		return !recs[len(recs)-1].Created.Add(every).After(a.cfg.Now())
	}
	if st := a.state.Load(); st != nil && !due([]keyRecord{{Created: st.keys[len(st.keys)-1].created}}) {
		return nil
	}
	info, rotated, err := a.rotate(ctx, DefaultKeyActivationDelay, due)
	if rotated {
		a.log.Info("rotated token signing key on schedule", "kid", info.KID, "activates", info.Activates)
	}
	return err
}

// rotate appends a new key when due says so of the stored records, and
// retires expired ones, in one transaction; then reloads and tells the
// other processes.
func (a *Authority) rotate(ctx context.Context, delay time.Duration, due func([]keyRecord) bool) (SigningKeyInfo, bool, error) {
	if _, err := a.current(); err != nil {
		return SigningKeyInfo{}, false, err
	}
	now := a.cfg.Now()
	k, err := generateSigningKey(now)
	if err != nil {
		return SigningKeyInfo{}, false, err
	}
	k.activates = now.Add(delay).UTC()
	rec, err := sealSigningKey(a.cfg.Sealer, k)
	if err != nil {
		return SigningKeyInfo{}, false, err
	}

	var rotated bool
	err = a.cfg.Store.Update(ctx, func(tx store.Tx) error {
		rotated = false
		recs, err := scanKeyRecords(tx)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return errors.New("rotating signing key: no key is stored")
		}
		if !due(recs) {
			return nil
		}
		if err := retireKeys(tx, recs, now, a.cfg.TokenLifetime); err != nil {
			return err
		}
		next, err := nextKeyIndex(recs[len(recs)-1].index)
		if err != nil {
			return err
		}
		rotated = true
		return putJSON(tx, bucketSigningKeys, next, rec)
	})
	if err != nil {
		return SigningKeyInfo{}, false, fmt.Errorf("rotating signing key: %w", err)
	}
	if err := a.reload(ctx); err != nil {
		return SigningKeyInfo{}, rotated, err
	}
	a.notifyKeys(ctx)
	if rotated {
		a.log.Info("added token signing key", "kid", k.kid, "activates", k.activates)
	}
	return SigningKeyInfo{KID: k.kid, Created: k.created, Activates: k.activates}, rotated, nil
}

// retireKeys deletes the keys older than the one active at now, once a
// token lifetime (and leeway) has passed since the active one took over:
// no token they signed is still valid.
func retireKeys(tx store.Tx, recs []keyRecord, now time.Time, lifetime time.Duration) error {
	active := -1
	for i, r := range recs {
		from := r.Activates
		if from.IsZero() {
			from = r.Created
		}
		if !from.After(now) {
			active = i
		}
	}
	if active <= 0 {
		return nil
	}
	took := recs[active].Activates
	if took.IsZero() {
		took = recs[active].Created
	}
	if took.Add(lifetime + retirementLeeway).After(now) {
		return nil
	}
	for _, r := range recs[:active] {
		if err := tx.Delete(bucketSigningKeys, r.index); err != nil {
			return err
		}
	}
	return nil
}

// nextKeyIndex is the store key after index.
func nextKeyIndex(index string) (string, error) {
	n, err := strconv.Atoi(index)
	if err != nil {
		return "", fmt.Errorf("signing key record %q has no index", index)
	}
	return keyIndex(n + 1), nil
}

// reload re-reads the signing keys, as another process may have rotated
// them.
func (a *Authority) reload(ctx context.Context) error {
	old, err := a.current()
	if err != nil {
		return err
	}
	var ring keyRing
	err = a.cfg.Store.View(ctx, func(tx store.Tx) error {
		recs, err := scanKeyRecords(tx)
		if err != nil {
			return err
		}
		ring = make(keyRing, 0, len(recs))
		for _, rec := range recs {
			k := old.keys.find(rec.KID)
			if k == nil {
				if k, err = openSigningKey(a.cfg.Sealer, rec); err != nil {
					return err
				}
			}
			ring = append(ring, k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reloading signing keys: %w", err)
	}
	if len(ring) == 0 {
		return errors.New("reloading signing keys: none is stored")
	}
	st := *old
	st.keys = ring
	a.state.Store(&st)
	return nil
}

// notifyKeys tells the other processes on the store to reload the keys.
func (a *Authority) notifyKeys(ctx context.Context) {
	if n, ok := a.cfg.Store.(store.Notifier); ok {
		if err := n.Notify(ctx, keysTopic); err != nil {
			a.log.Warn("notifying other processes of new signing keys failed", "err", err)
		}
	}
}

// Run keeps the signing keys current until ctx ends: it reloads them when
// another process changes them and every keyReloadInterval, and rotates
// them when Config.KeyRotationInterval says a rotation is due. Call it
// after Init.
func (a *Authority) Run(ctx context.Context) {
	var wake <-chan struct{}
	if n, ok := a.cfg.Store.(store.Notifier); ok {
		var stop func()
		wake, stop = n.Subscribe(keysTopic)
		defer stop()
	}
	t := time.NewTicker(keyReloadInterval)
	defer t.Stop()
	for {
		if err := a.rotateIfDue(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("scheduled signing key rotation failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
		if err := a.reload(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("reloading signing keys failed", "err", err)
		}
		if err := a.purgeAssertions(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("forgetting expired client assertions failed", "err", err)
		}
	}
}
