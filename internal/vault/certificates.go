package vault

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/pki"
	"github.com/keygate/keygate/internal/store"
)

// CertificateProperties describe one version of a certificate, without
// the certificate itself.
type CertificateProperties struct {
	Name       string
	Version    string
	Attributes Attributes
	Tags       map[string]string

	// Thumbprint is the SHA-1 digest of the certificate (x5t).
	Thumbprint []byte

	RecoverableDays int
	RecoveryLevel   string
}

// Certificate is one version of a certificate with its DER, the content
// type of its secret, and the certificate's policy.
type Certificate struct {
	CertificateProperties
	CER         []byte
	ContentType string
	Policy      Policy

	// Pending marks the version a creation is still making (or failed to
	// make): it has no certificate yet and is disabled.
	Pending bool
}

// DeletedCertificate is a soft-deleted certificate's current version.
type DeletedCertificate struct {
	Certificate
	DeletedDate        time.Time
	ScheduledPurgeDate time.Time
}

// ImportCertificate is the input of Service.ImportCertificate. Value is
// the PEM text, or a PFX in standard base64. It redacts itself.
type ImportCertificate struct {
	Value      string
	Password   string
	Policy     *PolicyInput
	Attributes AttributesUpdate
	Tags       map[string]string
}

// String hides the value and password.
func (ImportCertificate) String() string { return "ImportCertificate{value and password redacted}" }

// CertificateUpdate is the input of Service.UpdateCertificate: enabled
// and tags of a version, and optionally the certificate's policy.
type CertificateUpdate struct {
	Attributes AttributesUpdate
	Tags       map[string]string
	Policy     *PolicyInput
}

// ImportCertificate stores a new version of the certificate called name
// from a PFX or PEM holding its private key, creating the certificate if
// it does not exist.
func (s *Service) ImportCertificate(ctx context.Context, vault, name string, in ImportCertificate) (Certificate, error) {
	if err := validateCertInput(name, in.Tags); err != nil {
		return Certificate{}, err
	}
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return Certificate{}, err
	}
	bundle, contentType, err := decodeImport(in.Value, in.Password)
	if err != nil {
		return Certificate{}, err
	}
	now := s.now().UTC().Truncate(time.Second)
	leaf := bundle.Leaf()
	if !now.Before(leaf.NotAfter) {
		// Key Vault refuses these: "X509 Certificate is already expired".
		return Certificate{}, badParameter("value: the certificate expired on %s; an expired certificate cannot be imported",
			leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	policyIn := derefOr(in.Policy, PolicyInput{})
	pol, err := policyFromCertificate(leaf, contentType, policyIn, now)
	if err != nil {
		return Certificate{}, err
	}
	if err := s.checkIssuerExists(ctx, vault, pol.Issuer.Name); err != nil {
		return Certificate{}, err
	}

	version := newVersion()
	rec, sec, err := s.prepareVersion(vault, name, version, bundle.Key, bundle.Certs, pol, now)
	if err != nil {
		return Certificate{}, err
	}
	applyVersionInput(rec, sec, in.Attributes, in.Tags)

	var head *certHead
	err = s.store.Update(ctx, func(tx store.Tx) error {
		head, err = loadOrNewCertHead(tx, vault, name, now)
		if err != nil {
			return err
		}
		if in.Policy != nil || head.Current == "" {
			head.Policy = pol
		}
		return s.putVersion(tx, vault, head, rec, sec, "imported")
	})
	if err != nil {
		return Certificate{}, err
	}
	s.notifyEvents(ctx, vault)
	s.log.Info("certificate imported", "vault", vault, "name", head.Name, "version", version,
		"serial", leaf.SerialNumber.Text(16), "expires", leaf.NotAfter)
	return rec.certificate(head, v), nil
}

// decodeImport reads an import's value: PEM text, or a base64 PFX.
func decodeImport(value, password string) (*pki.Bundle, string, error) {
	trimmed := strings.TrimSpace(value)
	if trimmed == "" {
		return nil, "", badParameter("value: required: a PFX in base64, or PEM text with the key and certificates")
	}
	if strings.HasPrefix(trimmed, "-----BEGIN") {
		b, err := pki.DecodePEM([]byte(trimmed))
		if err != nil {
			return nil, "", badParameter("value: %s", err)
		}
		return b, ContentTypePEM, nil
	}
	der, err := base64.StdEncoding.DecodeString(trimmed)
	if err != nil {
		return nil, "", badParameter("value: neither PEM text nor a base64-encoded PFX")
	}
	if strings.HasPrefix(strings.TrimSpace(string(der)), "-----BEGIN") {
		// PEM sent base64-encoded, as some clients do with every file.
		return decodeImport(string(der), password)
	}
	b, err := pki.DecodePFX(der, password)
	if errors.Is(err, pki.ErrWrongPassword) {
		if password == "" {
			return nil, "", badParameter("pwd: the PFX is protected by a password; give it in pwd")
		}
		return nil, "", badParameter("pwd: the password does not open the PFX")
	}
	if err != nil {
		return nil, "", badParameter("value: %s", err)
	}
	return b, ContentTypePFX, nil
}

func validateCertInput(name string, tags map[string]string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	return validateTags(tags)
}

// loadOrNewCertHead loads a live certificate or starts a new one, and
// checks the name is free for a certificate in the secrets, too.
func loadOrNewCertHead(tx store.Tx, vault, name string, now time.Time) (*certHead, error) {
	head, err := loadCertHead(tx, vault, name)
	switch {
	case errors.Is(err, ErrNotFound):
		head = &certHead{Name: name, Created: now}
	case err != nil:
		return nil, err
	case head.Deleted != nil:
		return nil, errorf(ErrConflict, "certificate %s is deleted but recoverable: recover or purge it before adding a version", head.Name)
	}
	sh, err := loadSecretHead(tx, vault, name)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return nil, err
	case !sh.Managed:
		return nil, errorf(ErrConflict, "a secret named %s exists that is not a certificate's: certificates and their secrets share names", sh.Name)
	}
	return head, nil
}

// prepareVersion builds the records of a new version, sealing its key and
// its secret's value outside any transaction.
func (s *Service) prepareVersion(vault, name, version string, key crypto.Signer, chain []*x509.Certificate, pol Policy, now time.Time) (*certVersion, *secretVersion, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding private key: %w", err)
	}
	sealedKey, err := s.sealer.Seal(keyDER, certKeyAAD(vault, name, version))
	if err != nil {
		return nil, nil, err
	}
	value, err := secretValue(key, chain, pol)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := s.sealer.Seal(value, secretAAD(vault, name, version))
	if err != nil {
		return nil, nil, err
	}
	leaf := chain[0]
	rec := &certVersion{
		Version:     version,
		Created:     now,
		Updated:     now,
		Enabled:     true,
		NotBefore:   leaf.NotBefore.UTC(),
		Expires:     leaf.NotAfter.UTC(),
		CER:         leaf.Raw,
		ContentType: pol.ContentType,
		Exportable:  pol.Key.Exportable,
		SealedKey:   sealedKey,
	}
	for _, c := range chain[1:] {
		rec.Chain = append(rec.Chain, c.Raw)
	}
	sec := &secretVersion{
		Version:     version,
		Created:     now,
		Updated:     now,
		Enabled:     true,
		NotBefore:   &rec.NotBefore,
		Expires:     &rec.Expires,
		ContentType: pol.ContentType,
		Managed:     true,
		Sealed:      sealed,
	}
	return rec, sec, nil
}

// secretValue is what a certificate's secret holds: a base64 PFX with an
// empty password, or PEM with the key first, as the policy's content type
// says. A key that is not exportable is left out.
func secretValue(key crypto.Signer, chain []*x509.Certificate, pol Policy) ([]byte, error) {
	b := &pki.Bundle{Certs: chain}
	if pol.Key.Exportable {
		b.Key = key
	}
	if pol.ContentType == ContentTypePEM {
		return b.EncodePEM()
	}
	pfx, err := b.EncodePFX()
	if err != nil {
		return nil, err
	}
	return []byte(base64.StdEncoding.EncodeToString(pfx)), nil
}

func applyVersionInput(rec *certVersion, sec *secretVersion, a AttributesUpdate, tags map[string]string) {
	if a.Enabled != nil {
		rec.Enabled, sec.Enabled = *a.Enabled, *a.Enabled
	}
	rec.Tags, sec.Tags = maps.Clone(tags), maps.Clone(tags)
}

// putVersion stores rec as head's new current version, with its secret,
// and records the events, inside tx. how says where the version came
// from (imported, created, renewed, merged) for the event's detail.
func (s *Service) putVersion(tx store.Tx, vault string, head *certHead, rec *certVersion, sec *secretVersion, how string) error {
	head.Current = rec.Version
	if err := putJSON(tx, certVersionsBucket(vault), versionKey(head.Name, rec.Version), rec); err != nil {
		return err
	}
	if err := putJSON(tx, certsBucket(vault), nameKey(head.Name), head); err != nil {
		return err
	}
	sh, err := loadSecretHead(tx, vault, head.Name)
	if errors.Is(err, ErrNotFound) {
		sh, err = &secretHead{Name: head.Name, Created: rec.Created, Managed: true}, nil
	}
	if err != nil {
		return err
	}
	sh.Current = rec.Version
	if err := putJSON(tx, versionsBucket(vault), versionKey(head.Name, rec.Version), sec); err != nil {
		return err
	}
	if err := putJSON(tx, secretsBucket(vault), nameKey(head.Name), sh); err != nil {
		return err
	}
	detail := fmt.Sprintf("%s; expires %s", how, rec.Expires.Format(time.RFC3339))
	now := s.now().UTC()
	for _, kind := range []string{KindCertificate, KindSecret} {
		e := Event{Time: now, Type: EventNewVersion, Kind: kind, Name: head.Name, Version: rec.Version, Detail: detail}
		if err := recordEvent(tx, vault, e); err != nil {
			return err
		}
	}
	return nil
}

// GetCertificate returns a version of a certificate; an empty version
// means the current one.
func (s *Service) GetCertificate(ctx context.Context, vault, name, version string) (Certificate, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return Certificate{}, err
	}
	var out Certificate
	err = s.store.View(ctx, func(tx store.Tx) error {
		if version == "" {
			head, err := loadLiveCertHead(tx, vault, name)
			if err != nil {
				return err
			}
			if head.makingFirstVersion() {
				out = head.pendingCertificate(v)
				return nil
			}
		}
		head, rec, err := loadCertVersion(tx, vault, name, version)
		if err != nil {
			return err
		}
		out = rec.certificate(head, v)
		return nil
	})
	return out, err
}

// makingFirstVersion tells whether the certificate has no version yet and
// a creation that has not been cancelled: Key Vault then answers a get of
// the latest version with the version being made, which the JavaScript
// SDK's certificate operation poller reads before anything else.
func (h *certHead) makingFirstVersion() bool {
	return h.Current == "" && h.Pending != nil && h.Pending.Status != StatusCancelled
}

// pendingCertificate is the version a creation is making, as Key Vault
// shows it: disabled, with the policy and the operation's tags, and no
// certificate.
func (h *certHead) pendingCertificate(v *Vault) Certificate {
	props := h.pendingProperties(v)
	props.Version = h.Pending.Version
	props.RecoveryLevel = v.RecoveryLevel()
	return Certificate{
		CertificateProperties: props,
		ContentType:           h.Policy.ContentType,
		Policy:                h.Policy,
		Pending:               true,
	}
}

// UpdateCertificate changes a version's enabled flag and tags (the
// current version when version is empty), and the certificate's policy
// when in.Policy is set. The version's secret follows. The certificate's
// nbf and exp are its own and cannot be changed.
func (s *Service) UpdateCertificate(ctx context.Context, vault, name, version string, in CertificateUpdate) (Certificate, error) {
	if err := validateTags(in.Tags); err != nil {
		return Certificate{}, err
	}
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return Certificate{}, err
	}
	now := s.now().UTC().Truncate(time.Second)
	var out Certificate
	err = s.store.Update(ctx, func(tx store.Tx) error {
		head, rec, err := loadCertVersion(tx, vault, name, version)
		if err != nil {
			return err
		}
		if err := checkFixedDates(rec, in.Attributes); err != nil {
			return err
		}
		if in.Policy != nil {
			if err := s.updatePolicyTx(tx, vault, head, *in.Policy, now); err != nil {
				return err
			}
		}
		if err := s.updateVersionTx(tx, vault, head, rec, in, now); err != nil {
			return err
		}
		out = rec.certificate(head, v)
		return nil
	})
	if err != nil {
		return Certificate{}, err
	}
	s.notifyEvents(ctx, vault)
	return out, nil
}

func checkFixedDates(rec *certVersion, a AttributesUpdate) error {
	if a.NotBefore != nil && !a.NotBefore.Equal(rec.NotBefore) {
		return badParameter("attributes.nbf: is the certificate's own notBefore and cannot be changed")
	}
	if a.Expires != nil && !a.Expires.Equal(rec.Expires) {
		return badParameter("attributes.exp: is the certificate's own notAfter and cannot be changed")
	}
	return nil
}

// updateVersionTx applies enabled and tags to a version and its secret,
// and records an update event.
func (s *Service) updateVersionTx(tx store.Tx, vault string, head *certHead, rec *certVersion, in CertificateUpdate, now time.Time) error {
	if in.Attributes.Enabled == nil && in.Tags == nil {
		return putJSON(tx, certsBucket(vault), nameKey(head.Name), head)
	}
	var sec secretVersion
	if err := getJSON(tx, versionsBucket(vault), versionKey(head.Name, rec.Version), &sec); err != nil {
		return fmt.Errorf("loading the secret of certificate %s: %w", head.Name, err)
	}
	if in.Attributes.Enabled != nil {
		rec.Enabled, sec.Enabled = *in.Attributes.Enabled, *in.Attributes.Enabled
	}
	if in.Tags != nil {
		rec.Tags, sec.Tags = maps.Clone(in.Tags), maps.Clone(in.Tags)
	}
	rec.Updated, sec.Updated = now, now
	if err := putJSON(tx, certVersionsBucket(vault), versionKey(head.Name, rec.Version), rec); err != nil {
		return err
	}
	if err := putJSON(tx, versionsBucket(vault), versionKey(head.Name, rec.Version), &sec); err != nil {
		return err
	}
	if err := putJSON(tx, certsBucket(vault), nameKey(head.Name), head); err != nil {
		return err
	}
	detail := fmt.Sprintf("enabled=%t", rec.Enabled)
	for _, kind := range []string{KindCertificate, KindSecret} {
		e := Event{Time: now, Type: EventUpdated, Kind: kind, Name: head.Name, Version: rec.Version, Detail: detail}
		if err := recordEvent(tx, vault, e); err != nil {
			return err
		}
	}
	return nil
}

// CertificatePolicy returns the policy of the certificate called name.
func (s *Service) CertificatePolicy(ctx context.Context, vault, name string) (Policy, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return Policy{}, err
	}
	var out Policy
	err := s.store.View(ctx, func(tx store.Tx) error {
		head, err := loadLiveCertHead(tx, vault, name)
		if err != nil {
			return err
		}
		out = head.Policy
		return nil
	})
	return out, err
}

// UpdateCertificatePolicy lays in over the certificate's policy and
// returns the result. The next version made (created or renewed) follows
// it; existing versions stay as they are.
func (s *Service) UpdateCertificatePolicy(ctx context.Context, vault, name string, in PolicyInput) (Policy, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return Policy{}, err
	}
	now := s.now().UTC().Truncate(time.Second)
	var out Policy
	err := s.store.Update(ctx, func(tx store.Tx) error {
		head, err := loadLiveCertHead(tx, vault, name)
		if err != nil {
			return err
		}
		if err := s.updatePolicyTx(tx, vault, head, in, now); err != nil {
			return err
		}
		out = head.Policy
		return putJSON(tx, certsBucket(vault), nameKey(head.Name), head)
	})
	return out, err
}

func (s *Service) updatePolicyTx(tx store.Tx, vault string, head *certHead, in PolicyInput, now time.Time) error {
	p := head.Policy
	p.apply(in)
	if err := p.validate(in); err != nil {
		return err
	}
	if err := issuerExistsTx(tx, vault, p.Issuer.Name); err != nil {
		return err
	}
	p.Updated = now
	head.Policy = p
	return nil
}

// ListCertificates returns up to max live certificates, each with its
// current version's properties, in name order, after the cursor after.
// A certificate whose first version is still being made (or whose making
// failed) has no version yet; it is listed only when pending says so, as
// Key Vault's includePending does.
func (s *Service) ListCertificates(ctx context.Context, vault, after string, max int, pending bool) ([]CertificateProperties, string, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return nil, "", err
	}
	var (
		items []CertificateProperties
		next  string
	)
	err = s.store.View(ctx, func(tx store.Tx) error {
		items = nil
		next, err = scanCertHeads(tx, vault, after, max, false, pending, func(head *certHead, rec *certVersion) {
			if rec == nil {
				items = append(items, head.pendingProperties(v))
				return
			}
			items = append(items, rec.properties(head.Name, v))
		})
		return err
	})
	return items, next, err
}

// scanCertHeads calls emit for up to max certificates after the cursor
// that are deleted or live, as deleted says, and have a version. With
// pending, certificates with no version but an operation are emitted too,
// with a nil version.
func scanCertHeads(tx store.Tx, vault, after string, max int, deleted, pending bool, emit func(*certHead, *certVersion)) (string, error) {
	var (
		last, next string
		count      int
		scanErr    error
	)
	err := tx.Scan(certsBucket(vault), "", after, func(key string, raw []byte) bool {
		if count == max {
			next = last
			return false
		}
		var head certHead
		if scanErr = unmarshal(raw, &head); scanErr != nil {
			return false
		}
		if (head.Deleted != nil) != deleted {
			return true
		}
		if head.Current == "" {
			if pending && head.Pending != nil {
				emit(&head, nil)
				last = key
				count++
			}
			return true
		}
		var rec certVersion
		if scanErr = getJSON(tx, certVersionsBucket(vault), versionKey(head.Name, head.Current), &rec); scanErr != nil {
			return false
		}
		emit(&head, &rec)
		last = key
		count++
		return true
	})
	return next, errors.Join(err, scanErr)
}

// ListCertificateVersions returns up to max versions of a certificate in
// version order, after the version after.
func (s *Service) ListCertificateVersions(ctx context.Context, vault, name, after string, max int) ([]CertificateProperties, string, error) {
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return nil, "", err
	}
	var (
		items []CertificateProperties
		next  string
	)
	err = s.store.View(ctx, func(tx store.Tx) error {
		items, next = nil, ""
		head, err := loadLiveCertHead(tx, vault, name)
		if err != nil {
			return err
		}
		next, err = scanVersions(tx, certVersionsBucket(vault), name, after, max, func(rec *certVersion) {
			items = append(items, rec.properties(head.Name, v))
		})
		return err
	})
	return items, next, err
}

func (r *certVersion) properties(name string, v *Vault) CertificateProperties {
	nbf, exp := r.NotBefore, r.Expires
	leafSum := pki.Thumbprint(&x509.Certificate{Raw: r.CER})
	return CertificateProperties{
		Name:    name,
		Version: r.Version,
		Attributes: Attributes{
			Enabled:   r.Enabled,
			NotBefore: &nbf,
			Expires:   &exp,
			Created:   r.Created,
			Updated:   r.Updated,
		},
		Tags:            r.Tags,
		Thumbprint:      leafSum,
		RecoverableDays: int(v.Retention() / (24 * time.Hour)),
		RecoveryLevel:   v.RecoveryLevel(),
	}
}

// pendingProperties describes a certificate with no version yet by its
// operation: disabled, as nothing of it can be used until the operation
// completes, with the tags the version will have.
func (h *certHead) pendingProperties(v *Vault) CertificateProperties {
	return CertificateProperties{
		Name: h.Name,
		Attributes: Attributes{
			Created: h.Pending.Created,
			Updated: h.Pending.Created,
		},
		Tags:            h.Pending.Tags,
		RecoverableDays: int(v.Retention() / (24 * time.Hour)),
	}
}

func (r *certVersion) certificate(head *certHead, v *Vault) Certificate {
	return Certificate{
		CertificateProperties: r.properties(head.Name, v),
		CER:                   r.CER,
		ContentType:           r.ContentType,
		Policy:                head.Policy,
	}
}

// openCertKey opens a version's sealed private key.
func (s *Service) openCertKey(vault, name string, rec *certVersion) (crypto.Signer, error) {
	der, err := s.sealer.Open(rec.SealedKey, certKeyAAD(vault, name, rec.Version))
	if err != nil {
		return nil, errors.New("opening sealed certificate key: the stored record does not open under this vault's master key")
	}
	return parseSigner(der)
}

func parseSigner(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("parsing stored private key: not PKCS#8")
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("parsing stored private key: key cannot sign")
	}
	return signer, nil
}
