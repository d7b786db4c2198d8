package vault

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/keygate/keygate/internal/issuer"
	"github.com/keygate/keygate/internal/store"
)

func issuersBucket(vault string) string { return "vault/" + vault + "/issuers" }

// IssuerObject is a certificate issuer of a vault, as Key Vault's issuers
// API manages it. keygate serves provider keygate-ca: a private CA the
// vault makes when the issuer is first set, and keeps sealed.
type IssuerObject struct {
	Name      string
	Provider  string
	AccountID string
	OrgID     string
	Admins    []AdminContact
	Enabled   bool
	Created   time.Time
	Updated   time.Time

	// Chain is the CA's chain, intermediate then root.
	Chain []*x509.Certificate
}

// AdminContact is an administrator of an issuer's organization.
type AdminContact struct {
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
	Email     string `json:"email,omitempty"`
	Phone     string `json:"phone,omitempty"`
}

// IssuerInput sets or updates an issuer; nil fields are left as they are
// (update) or take defaults (set). The password of credentials is kept
// sealed and never returned.
type IssuerInput struct {
	Provider  *string
	AccountID *string
	Password  *string
	OrgID     *string
	Admins    []AdminContact
	Enabled   *bool
}

// String hides the password.
func (IssuerInput) String() string { return "IssuerInput{password redacted}" }

type issuerRecord struct {
	Name           string         `json:"name"`
	Provider       string         `json:"provider"`
	AccountID      string         `json:"accountId,omitempty"`
	SealedPassword []byte         `json:"sealedPassword,omitempty"`
	OrgID          string         `json:"orgId,omitempty"`
	Admins         []AdminContact `json:"admins,omitempty"`
	Enabled        bool           `json:"enabled"`
	Created        time.Time      `json:"created"`
	Updated        time.Time      `json:"updated"`
	RootCert       []byte         `json:"rootCert"`
	InterCert      []byte         `json:"intermediateCert"`
	SealedKeys     *sealedCAKeys  `json:"sealedKeys"`
}

type sealedCAKeys struct {
	Root         []byte `json:"root"`
	Intermediate []byte `json:"intermediate"`
}

func issuerAAD(vault, name, part string) []byte {
	return []byte("keygate/v1;vault=" + vault + ";kind=issuer-" + part + ";name=" + nameKey(name))
}

func validateIssuerName(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if issuer.Reserved(name) != nil {
		return badParameter("name: %s is reserved for the policy's issuer and cannot name an issuer object", name)
	}
	return nil
}

// SetIssuer creates or replaces the issuer called name. A new keygate-ca
// issuer gets a new root and intermediate; setting an existing one keeps
// its CA, so certificates it issued stay trusted.
func (s *Service) SetIssuer(ctx context.Context, vault, name string, in IssuerInput) (IssuerObject, error) {
	if err := validateIssuerName(name); err != nil {
		return IssuerObject{}, err
	}
	if in.Provider == nil || *in.Provider == "" {
		return IssuerObject{}, badParameter("provider: required; keygate serves provider %s", issuer.ProviderCA)
	}
	return s.writeIssuer(ctx, vault, name, in, true)
}

// UpdateIssuer changes the issuer called name.
func (s *Service) UpdateIssuer(ctx context.Context, vault, name string, in IssuerInput) (IssuerObject, error) {
	if err := validateIssuerName(name); err != nil {
		return IssuerObject{}, err
	}
	return s.writeIssuer(ctx, vault, name, in, false)
}

func (s *Service) writeIssuer(ctx context.Context, vault, name string, in IssuerInput, create bool) (IssuerObject, error) {
	if in.Provider != nil && *in.Provider != issuer.ProviderCA {
		return IssuerObject{}, badParameter("provider: %q is not served here; keygate's issuers are of provider %s", quoteName(*in.Provider), issuer.ProviderCA)
	}
	if _, err := s.Vault(ctx, vault); err != nil {
		return IssuerObject{}, err
	}
	now := s.now().UTC().Truncate(time.Second)

	// A CA is made before the transaction (key generation is slow, and
	// fn may run twice); it is used only if the issuer is new.
	var fresh *issuerRecord
	if create {
		var err error
		if fresh, err = s.newCARecord(vault, name, now); err != nil {
			return IssuerObject{}, err
		}
	}
	var sealedPW []byte
	if in.Password != nil {
		var err error
		if sealedPW, err = s.sealer.Seal([]byte(*in.Password), issuerAAD(vault, name, "password")); err != nil {
			return IssuerObject{}, err
		}
	}

	var out *issuerRecord
	err := s.store.Update(ctx, func(tx store.Tx) error {
		rec := new(issuerRecord)
		err := getJSON(tx, issuersBucket(vault), nameKey(name), rec)
		switch {
		case errors.Is(err, store.ErrNotFound) && create:
			cp := *fresh
			rec = &cp
		case errors.Is(err, store.ErrNotFound):
			return errorf(ErrNotFound, "issuer %s not found", quoteName(name))
		case err != nil:
			return err
		}
		rec.apply(in, sealedPW, now)
		out = rec
		return putJSON(tx, issuersBucket(vault), nameKey(name), rec)
	})
	if err != nil {
		return IssuerObject{}, err
	}
	return out.object()
}

func (s *Service) newCARecord(vault, name string, now time.Time) (*issuerRecord, error) {
	ca, err := issuer.NewCA(name, now)
	if err != nil {
		return nil, err
	}
	m, err := ca.Material()
	if err != nil {
		return nil, err
	}
	rootKey, err := s.sealer.Seal(m.RootKey, issuerAAD(vault, name, "root-key"))
	if err != nil {
		return nil, err
	}
	interKey, err := s.sealer.Seal(m.IntermediateKey, issuerAAD(vault, name, "intermediate-key"))
	if err != nil {
		return nil, err
	}
	return &issuerRecord{
		Name: name, Provider: issuer.ProviderCA, Enabled: true, Created: now,
		RootCert: m.RootCert, InterCert: m.IntermediateCert,
		SealedKeys: &sealedCAKeys{Root: rootKey, Intermediate: interKey},
	}, nil
}

func (r *issuerRecord) apply(in IssuerInput, sealedPW []byte, now time.Time) {
	setIf(&r.AccountID, in.AccountID)
	if sealedPW != nil {
		r.SealedPassword = sealedPW
	}
	setIf(&r.OrgID, in.OrgID)
	if in.Admins != nil {
		r.Admins = in.Admins
	}
	setIf(&r.Enabled, in.Enabled)
	r.Updated = now
}

func (r *issuerRecord) object() (IssuerObject, error) {
	chain, err := pkiChain(r.InterCert, r.RootCert)
	if err != nil {
		return IssuerObject{}, err
	}
	return IssuerObject{
		Name: r.Name, Provider: r.Provider, AccountID: r.AccountID, OrgID: r.OrgID,
		Admins: r.Admins, Enabled: r.Enabled, Created: r.Created, Updated: r.Updated, Chain: chain,
	}, nil
}

func pkiChain(ders ...[]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(ders))
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, errors.New("reading stored CA certificate: damaged")
		}
		out = append(out, c)
	}
	return out, nil
}

// Issuer returns the issuer called name.
func (s *Service) Issuer(ctx context.Context, vault, name string) (IssuerObject, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return IssuerObject{}, err
	}
	var rec *issuerRecord
	err := s.store.View(ctx, func(tx store.Tx) error {
		var err error
		rec, err = loadIssuer(tx, vault, name)
		return err
	})
	if err != nil {
		return IssuerObject{}, err
	}
	return rec.object()
}

func loadIssuer(tx store.Tx, vault, name string) (*issuerRecord, error) {
	rec := new(issuerRecord)
	err := getJSON(tx, issuersBucket(vault), nameKey(name), rec)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(ErrNotFound, "issuer %s not found", quoteName(name))
	}
	return rec, err
}

// DeleteIssuer removes the issuer called name and its CA, and returns
// what it was. Certificates it issued stay; they can no longer be
// renewed through it.
func (s *Service) DeleteIssuer(ctx context.Context, vault, name string) (IssuerObject, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return IssuerObject{}, err
	}
	var rec *issuerRecord
	err := s.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if rec, err = loadIssuer(tx, vault, name); err != nil {
			return err
		}
		return tx.Delete(issuersBucket(vault), nameKey(name))
	})
	if err != nil {
		return IssuerObject{}, err
	}
	return rec.object()
}

// ListIssuers returns up to max issuers in name order after the cursor.
func (s *Service) ListIssuers(ctx context.Context, vault, after string, max int) ([]IssuerObject, string, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return nil, "", err
	}
	var (
		recs []*issuerRecord
		next string
	)
	err := s.store.View(ctx, func(tx store.Tx) error {
		recs, next = nil, ""
		var (
			last    string
			scanErr error
		)
		err := tx.Scan(issuersBucket(vault), "", after, func(key string, raw []byte) bool {
			if len(recs) == max {
				next = last
				return false
			}
			rec := new(issuerRecord)
			if scanErr = unmarshal(raw, rec); scanErr != nil {
				return false
			}
			recs = append(recs, rec)
			last = key
			return true
		})
		return errors.Join(err, scanErr)
	})
	if err != nil {
		return nil, "", err
	}
	out := make([]IssuerObject, 0, len(recs))
	for _, r := range recs {
		o, err := r.object()
		if err != nil {
			return nil, "", err
		}
		out = append(out, o)
	}
	return out, next, nil
}

// checkIssuerExists checks that a policy's issuer is reserved or an
// issuer of the vault.
func (s *Service) checkIssuerExists(ctx context.Context, vault, name string) error {
	return s.store.View(ctx, func(tx store.Tx) error { return issuerExistsTx(tx, vault, name) })
}

func issuerExistsTx(tx store.Tx, vault, name string) error {
	if issuer.Reserved(name) != nil {
		return nil
	}
	_, err := loadIssuer(tx, vault, name)
	if errors.Is(err, ErrNotFound) {
		return badParameter("policy.issuer.name: no issuer %s in this vault; set it first (keygate certificate issuer create), or use Self or Unknown", quoteName(name))
	}
	return err
}

// resolveIssuer returns the issuer a policy names, opening a keygate-ca
// issuer's sealed keys.
func (s *Service) resolveIssuer(tx store.Tx, vault, name string) (issuer.Issuer, error) {
	if is := issuer.Reserved(name); is != nil {
		return is, nil
	}
	rec, err := loadIssuer(tx, vault, name)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, errorf(ErrBadParameter, "issuer %s no longer exists in this vault", quoteName(name))
		}
		return nil, err
	}
	if !rec.Enabled {
		return nil, errorf(ErrBadParameter, "issuer %s is disabled", rec.Name)
	}
	if rec.SealedKeys == nil {
		return nil, errors.New("issuer record has no CA keys")
	}
	rootKey, err := s.sealer.Open(rec.SealedKeys.Root, issuerAAD(vault, rec.Name, "root-key"))
	if err != nil {
		return nil, errors.New("opening keygate-ca root key: the stored record does not open under this vault's master key")
	}
	interKey, err := s.sealer.Open(rec.SealedKeys.Intermediate, issuerAAD(vault, rec.Name, "intermediate-key"))
	if err != nil {
		return nil, errors.New("opening keygate-ca intermediate key: the stored record does not open under this vault's master key")
	}
	return issuer.ParseCA(issuer.Material{RootCert: rec.RootCert, RootKey: rootKey,
		IntermediateCert: rec.InterCert, IntermediateKey: interKey})
}
