package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// bucketHosts holds the hosts that managed identities are assigned to,
// keyed by lower-cased host name.
const bucketHosts = "identity_hosts"

// Bounds of a host's enrolment credential lifetime.
const (
	// DefaultCredentialLifetime is how long an enrolment credential is
	// valid when none is asked for: long enough that a fleet is not
	// re-enrolled every month, short enough that a copied credential
	// does not work for ever.
	DefaultCredentialLifetime = 90 * 24 * time.Hour

	MinCredentialLifetime = time.Minute
	MaxCredentialLifetime = 2 * 365 * 24 * time.Hour
)

// credentialPrefix starts every enrolment credential, so that secret
// scanners and people recognise one.
const credentialPrefix = "kgh_"

// maxHostIdentities bounds the identities assigned to one host.
const maxHostIdentities = 100

// Host is a machine whose agent obtains tokens for the managed identities
// assigned to it, authenticated by the host's enrolment credential. It
// holds no secret material.
type Host struct {
	Name       string
	Identities []string // names of the identities assigned, as first written

	CredentialIssued  time.Time
	CredentialExpires time.Time

	Created time.Time
	Updated time.Time
}

// hostRecord is a host as stored.
type hostRecord struct {
	Name       string   `json:"name"`
	Identities []string `json:"identities"` // identity keys (lower-cased names)

	// CredentialSHA256 is the SHA-256 of the enrolment credential: 256
	// random bits, for which a fast hash is as strong as a slow one.
	CredentialSHA256  []byte    `json:"credentialSha256"`
	CredentialIssued  time.Time `json:"credentialIssued"`
	CredentialExpires time.Time `json:"credentialExpires"`

	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// host returns the record as a Host, naming identities as stored in tx.
func (r *hostRecord) host(tx store.Tx) Host {
	h := Host{
		Name: r.Name, CredentialIssued: r.CredentialIssued, CredentialExpires: r.CredentialExpires,
		Created: r.Created, Updated: r.Updated, Identities: make([]string, 0, len(r.Identities)),
	}
	for _, key := range r.Identities {
		name := key
		if rec, err := loadManaged(tx, key); err == nil {
			name = rec.Name
		}
		h.Identities = append(h.Identities, name)
	}
	return h
}

// AssignIdentity assigns the identity called identityName to the host
// called hostName, creating the host if it is new. For a new host it
// returns the enrolment credential, valid for lifetime (zero means
// DefaultCredentialLifetime); the credential is returned only here, and
// the store keeps its hash. For a known host the credential is "": the
// host's agent keeps using the one it has. Assigning twice is not an
// error.
func (a *Authority) AssignIdentity(ctx context.Context, identityName, hostName string, lifetime time.Duration) (Host, string, error) {
	if _, err := a.current(); err != nil {
		return Host{}, "", fmt.Errorf("assigning identity: %w", err)
	}
	if err := ValidateHostName(hostName); err != nil {
		return Host{}, "", err
	}
	cred, sum, err := a.newCredential()
	if err != nil {
		return Host{}, "", fmt.Errorf("assigning identity: %w", err)
	}
	lifetime, err = credentialLifetime(lifetime)
	if err != nil {
		return Host{}, "", err
	}

	var (
		out     Host
		created bool
	)
	now := a.cfg.Now().UTC()
	err = a.cfg.Store.Update(ctx, func(tx store.Tx) error {
		mi, err := loadManaged(tx, identityName)
		if err != nil {
			return err
		}
		rec, err := loadHost(tx, hostName)
		created = errors.Is(err, ErrHostNotFound)
		switch {
		case created:
			rec = hostRecord{Name: hostName, Created: now, Identities: []string{}}
			rec.setCredential(sum, now, lifetime)
		case err != nil:
			return err
		}
		if !slices.Contains(rec.Identities, identityKey(mi.Name)) {
			if len(rec.Identities) >= maxHostIdentities {
				return fmt.Errorf("host %q has %d identities, the most allowed: %w", hostName, maxHostIdentities, ErrInvalid)
			}
			rec.Identities = append(rec.Identities, identityKey(mi.Name))
		}
		rec.Updated = now
		out = rec.host(tx)
		return putJSON(tx, bucketHosts, hostKey(hostName), rec)
	})
	if err != nil {
		return Host{}, "", fmt.Errorf("assigning identity: %w", err)
	}
	a.log.Info("assigned managed identity", "identity", identityName, "host", hostName, "new_host", created)
	if !created {
		return out, "", nil
	}
	return out, cred, nil
}

// UnassignIdentity removes the identity from the host's assignments. The
// host's agent obtains no more tokens for it; a token it holds stays
// valid until it expires.
func (a *Authority) UnassignIdentity(ctx context.Context, identityName, hostName string) (Host, error) {
	var out Host
	err := a.updateHost(ctx, hostName, func(tx store.Tx, rec *hostRecord) error {
		i := slices.Index(rec.Identities, identityKey(identityName))
		if i < 0 {
			return fmt.Errorf("identity %q is not assigned to host %q: %w", identityName, hostName, ErrIdentityNotFound)
		}
		rec.Identities = slices.Delete(rec.Identities, i, i+1)
		out = rec.host(tx)
		return nil
	})
	if err != nil {
		return Host{}, fmt.Errorf("unassigning identity: %w", err)
	}
	a.log.Info("unassigned managed identity", "identity", identityName, "host", hostName)
	return out, nil
}

// RotateHostCredential issues the host a new enrolment credential, valid
// for lifetime (zero means DefaultCredentialLifetime), and returns it; the
// old one stops working at once.
func (a *Authority) RotateHostCredential(ctx context.Context, hostName string, lifetime time.Duration) (Host, string, error) {
	lifetime, err := credentialLifetime(lifetime)
	if err != nil {
		return Host{}, "", err
	}
	cred, sum, err := a.newCredential()
	if err != nil {
		return Host{}, "", fmt.Errorf("rotating host credential: %w", err)
	}
	var out Host
	err = a.updateHost(ctx, hostName, func(tx store.Tx, rec *hostRecord) error {
		rec.setCredential(sum, a.cfg.Now().UTC(), lifetime)
		out = rec.host(tx)
		return nil
	})
	if err != nil {
		return Host{}, "", fmt.Errorf("rotating host credential: %w", err)
	}
	a.log.Info("issued host credential", "host", hostName, "expires", out.CredentialExpires)
	return out, cred, nil
}

// Host returns the host called name, or an error wrapping ErrHostNotFound.
func (a *Authority) Host(ctx context.Context, name string) (Host, error) {
	if _, err := a.current(); err != nil {
		return Host{}, fmt.Errorf("loading host: %w", err)
	}
	var out Host
	err := a.cfg.Store.View(ctx, func(tx store.Tx) error {
		rec, err := loadHost(tx, name)
		out = rec.host(tx)
		return err
	})
	if err != nil {
		return Host{}, fmt.Errorf("loading host: %w", err)
	}
	return out, nil
}

// ListHosts returns every host, ordered by lower-cased name.
func (a *Authority) ListHosts(ctx context.Context) ([]Host, error) {
	if _, err := a.current(); err != nil {
		return nil, fmt.Errorf("listing hosts: %w", err)
	}
	var out []Host
	err := a.cfg.Store.View(ctx, func(tx store.Tx) error {
		out = out[:0]
		return scanJSON(tx, bucketHosts, func(rec *hostRecord) { out = append(out, rec.host(tx)) })
	})
	if err != nil {
		return nil, fmt.Errorf("listing hosts: %w", err)
	}
	return out, nil
}

// DeleteHost removes the host: its credential stops working at once.
func (a *Authority) DeleteHost(ctx context.Context, name string) error {
	if _, err := a.current(); err != nil {
		return fmt.Errorf("deleting host: %w", err)
	}
	err := a.cfg.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := loadHost(tx, name); err != nil {
			return err
		}
		return tx.Delete(bucketHosts, hostKey(name))
	})
	if err != nil {
		return fmt.Errorf("deleting host: %w", err)
	}
	a.log.Info("deleted host", "host", name)
	return nil
}

// updateHost applies change to the stored record of the host called name.
func (a *Authority) updateHost(ctx context.Context, name string, change func(store.Tx, *hostRecord) error) error {
	if _, err := a.current(); err != nil {
		return err
	}
	return a.cfg.Store.Update(ctx, func(tx store.Tx) error {
		rec, err := loadHost(tx, name)
		if err != nil {
			return err
		}
		if err := change(tx, &rec); err != nil {
			return err
		}
		rec.Updated = a.cfg.Now().UTC()
		return putJSON(tx, bucketHosts, hostKey(name), rec)
	})
}

// setCredential installs a new credential hash, issued at now.
func (r *hostRecord) setCredential(sum []byte, now time.Time, lifetime time.Duration) {
	r.CredentialSHA256 = sum
	r.CredentialIssued = now
	r.CredentialExpires = now.Add(lifetime)
}

// newCredential makes an enrolment credential and its hash.
func (a *Authority) newCredential() (string, []byte, error) {
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, fmt.Errorf("generating host credential: %w", err)
	}
	cred := credentialPrefix + base64.RawURLEncoding.EncodeToString(raw)
	return cred, hashSecret(cred), nil
}

// credentialLifetime applies the default and bounds to a requested
// lifetime.
func credentialLifetime(d time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return DefaultCredentialLifetime, nil
	case d < MinCredentialLifetime || d > MaxCredentialLifetime:
		return 0, fmt.Errorf("credential lifetime: %v is not between %v and %v: %w",
			d, MinCredentialLifetime, MaxCredentialLifetime, ErrInvalid)
	}
	return d, nil
}

// Errors of authenticateHost, which the host endpoints map to refusals.
var (
	errBadHostCredential     = errors.New("unknown host or wrong credential")
	errHostCredentialExpired = errors.New("host credential has expired")
)

// authenticateHost returns the record of the host called name if
// credential is its current, unexpired enrolment credential.
func (a *Authority) authenticateHost(ctx context.Context, name, credential string) (hostRecord, error) {
	// Hash first, so that the work done does not depend on whether the
	// host exists.
	presented := hashSecret(credential)
	var rec hostRecord
	err := a.cfg.Store.View(ctx, func(tx store.Tx) error {
		var err error
		rec, err = loadHost(tx, name)
		return err
	})
	switch {
	case errors.Is(err, ErrHostNotFound), errors.Is(err, ErrInvalid):
		return rec, errBadHostCredential
	case err != nil:
		return rec, err
	case subtle.ConstantTimeCompare(presented, rec.CredentialSHA256) != 1:
		return rec, errBadHostCredential
	case !a.cfg.Now().Before(rec.CredentialExpires):
		return rec, errHostCredentialExpired
	}
	return rec, nil
}

// loadHost reads the record of the host called name.
func loadHost(tx store.Tx, name string) (hostRecord, error) {
	var rec hostRecord
	if err := ValidateHostName(name); err != nil {
		return rec, err
	}
	b, err := tx.Get(bucketHosts, hostKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return rec, fmt.Errorf("host %q: %w", name, ErrHostNotFound)
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("host %q: record is corrupt", name)
	}
	return rec, nil
}

// unassignEverywhere removes the identity with key from every host.
func unassignEverywhere(tx store.Tx, key string, now time.Time) error {
	var changed []hostRecord
	err := scanJSON(tx, bucketHosts, func(rec *hostRecord) {
		if i := slices.Index(rec.Identities, key); i >= 0 {
			rec.Identities = slices.Delete(rec.Identities, i, i+1)
			rec.Updated = now
			changed = append(changed, *rec)
		}
	})
	if err != nil {
		return err
	}
	for _, rec := range changed {
		if err := putJSON(tx, bucketHosts, hostKey(rec.Name), rec); err != nil {
			return err
		}
	}
	return nil
}

// hostKey is the store key of the host called name.
func hostKey(name string) string { return strings.ToLower(name) }

// ValidateHostName checks a host's name: a DNS name or a single label of
// letters, digits, hyphens, dots and underscores, 1 to 253 characters,
// starting with a letter or digit. The error wraps ErrInvalid.
func ValidateHostName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("host: %q must be 1 to 253 characters long: %w", truncate(name, 40), ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '-' && c != '.' && c != '_') {
			return fmt.Errorf("host: %q may hold only letters, digits, '-', '.' and '_', and must start with a letter or digit: %w",
				truncate(name, 40), ErrInvalid)
		}
	}
	return nil
}

// LogValue names the host; a Host holds no secret, but its records do.
func (h Host) LogValue() slog.Value { return slog.StringValue(h.Name) }

// Errors of VerifyHostCredential.
var (
	ErrCredentialRefused = errors.New("host credential refused")
	ErrCredentialExpired = errors.New("host credential expired")
)

// VerifyHostCredential checks that credential is the host's current,
// unexpired enrolment credential: nil, or an error wrapping
// ErrCredentialRefused (unknown host or wrong credential) or
// ErrCredentialExpired. keygate's own agent uses it to decide whether the
// credential it kept is still good.
func (a *Authority) VerifyHostCredential(ctx context.Context, hostName, credential string) error {
	if _, err := a.current(); err != nil {
		return fmt.Errorf("verifying host credential: %w", err)
	}
	_, err := a.authenticateHost(ctx, hostName, credential)
	switch {
	case errors.Is(err, errBadHostCredential):
		return fmt.Errorf("verifying host credential of %q: %w", hostName, ErrCredentialRefused)
	case errors.Is(err, errHostCredentialExpired):
		return fmt.Errorf("verifying host credential of %q: %w", hostName, ErrCredentialExpired)
	case err != nil:
		return fmt.Errorf("verifying host credential: %w", err)
	}
	return nil
}
