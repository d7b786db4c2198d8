package vault

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/keygate/keygate/internal/issuer"
	"github.com/keygate/keygate/internal/pki"
	"github.com/keygate/keygate/internal/store"
)

// JobsTopic is the store.Notifier topic woken when a certificate job
// (a creation to complete) is waiting, so that a scheduler in any
// process picks it up at once.
const JobsTopic = "keygate/certificate-jobs"

// Operation is a certificate's creation operation, as /pending shows it.
type Operation struct {
	Name                  string
	RequestID             string
	Issuer                IssuerParams
	CSR                   []byte
	CancellationRequested bool
	Status                string
	StatusDetails         string
	Error                 *OperationError

	// Target is the version the operation made, once completed.
	Target string
}

// OperationError says why an operation failed. Its message is safe to
// show.
type OperationError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// CreateCertificate is the input of Service.CreateCertificate. Policy may
// be nil for a certificate that exists: its policy is used.
type CreateCertificate struct {
	Policy     *PolicyInput
	Attributes AttributesUpdate
	Tags       map[string]string
}

// CreateCertificate starts making a new version of the certificate called
// name by its policy and returns the pending operation. The key is made
// and signed in the background (a scheduler's job); clients poll the
// operation until its status leaves inProgress. With issuer Unknown the
// operation waits, with a CSR, for MergeCertificate.
func (s *Service) CreateCertificate(ctx context.Context, vault, name string, in CreateCertificate) (Operation, error) {
	if err := validateCertInput(name, in.Tags); err != nil {
		return Operation{}, err
	}
	if _, err := s.Vault(ctx, vault); err != nil {
		return Operation{}, err
	}
	now := s.now().UTC().Truncate(time.Second)
	var pol *Policy
	if in.Policy != nil {
		p, err := newPolicy(*in.Policy, now)
		if err != nil {
			return Operation{}, err
		}
		pol = &p
	}

	var head *certHead
	err := s.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if head, err = loadOrNewCertHead(tx, vault, name, now); err != nil {
			return err
		}
		if head.Pending != nil && head.Pending.Status == StatusInProgress {
			return errorf(ErrConflict, "certificate %s already has a pending operation in progress: cancel or delete it first", head.Name)
		}
		switch {
		case pol != nil:
			head.Policy = *pol
		case head.Current == "" && head.Pending == nil:
			return badParameter("policy: required to create a new certificate")
		}
		if err := issuerExistsTx(tx, vault, head.Policy.Issuer.Name); err != nil {
			return err
		}
		head.Pending = &pendingOp{
			RequestID:     newVersion(),
			Version:       newVersion(),
			Issuer:        head.Policy.Issuer,
			Status:        StatusInProgress,
			StatusDetails: "Pending certificate created. The vault is making the key.",
			Enabled:       in.Attributes.Enabled,
			Tags:          maps.Clone(in.Tags),
			Created:       now,
		}
		return putJSON(tx, certsBucket(vault), nameKey(head.Name), head)
	})
	if err != nil {
		return Operation{}, err
	}
	s.notifyJobs(ctx)
	return head.Pending.operation(head.Name), nil
}

func (s *Service) notifyJobs(ctx context.Context) {
	if n, ok := s.store.(store.Notifier); ok {
		if err := n.Notify(ctx, JobsTopic); err != nil {
			s.log.Warn("waking the certificate scheduler failed", "err", err)
		}
	}
}

func (p *pendingOp) operation(name string) Operation {
	op := Operation{
		Name:                  name,
		RequestID:             p.RequestID,
		Issuer:                p.Issuer,
		CSR:                   p.CSR,
		CancellationRequested: p.CancellationRequested,
		Status:                p.Status,
		StatusDetails:         p.StatusDetails,
		Error:                 p.Error,
	}
	if p.Status == StatusCompleted {
		op.Target = p.Version
	}
	return op
}

// CertificateOperation returns the certificate's latest creation
// operation.
func (s *Service) CertificateOperation(ctx context.Context, vault, name string) (Operation, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return Operation{}, err
	}
	var out Operation
	err := s.store.View(ctx, func(tx store.Tx) error {
		head, err := loadPending(tx, vault, name)
		if err != nil {
			return err
		}
		out = head.Pending.operation(head.Name)
		return nil
	})
	return out, err
}

func loadPending(tx store.Tx, vault, name string) (*certHead, error) {
	head, err := loadLiveCertHead(tx, vault, name)
	if err != nil {
		return nil, err
	}
	if head.Pending == nil {
		return nil, errorf(ErrNotFound, "certificate %s has no pending operation", head.Name)
	}
	return head, nil
}

// CancelCertificateOperation asks for the operation in progress to stop;
// keygate stops it at once, and no version is made.
func (s *Service) CancelCertificateOperation(ctx context.Context, vault, name string) (Operation, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return Operation{}, err
	}
	var out Operation
	err := s.store.Update(ctx, func(tx store.Tx) error {
		head, err := loadPending(tx, vault, name)
		if err != nil {
			return err
		}
		p := head.Pending
		if p.Status == StatusInProgress {
			p.CancellationRequested = true
			p.Status = StatusCancelled
			p.StatusDetails = "The operation was cancelled; no certificate version was made."
			p.SealedKey = nil
		}
		out = p.operation(head.Name)
		return putJSON(tx, certsBucket(vault), nameKey(head.Name), head)
	})
	return out, err
}

// DeleteCertificateOperation removes the certificate's operation,
// stopping it if it is in progress, and returns it as it was. A
// certificate that has no version yet is removed with it.
func (s *Service) DeleteCertificateOperation(ctx context.Context, vault, name string) (Operation, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return Operation{}, err
	}
	var out Operation
	err := s.store.Update(ctx, func(tx store.Tx) error {
		head, err := loadPending(tx, vault, name)
		if err != nil {
			return err
		}
		out = head.Pending.operation(head.Name)
		head.Pending = nil
		if head.Current == "" {
			return tx.Delete(certsBucket(vault), nameKey(head.Name))
		}
		return putJSON(tx, certsBucket(vault), nameKey(head.Name), head)
	})
	return out, err
}

// MergeCertificate completes an operation of issuer Unknown with the
// certificate (and chain) an outside CA signed for its CSR, and returns
// the new version.
func (s *Service) MergeCertificate(ctx context.Context, vault, name string, x5c [][]byte, attrs AttributesUpdate, tags map[string]string) (Certificate, error) {
	if err := validateCertInput(name, tags); err != nil {
		return Certificate{}, err
	}
	v, err := s.Vault(ctx, vault)
	if err != nil {
		return Certificate{}, err
	}
	if len(x5c) == 0 {
		return Certificate{}, badParameter("x5c: required: the signed certificate, and its chain if any")
	}

	// The pending request and its key.
	var (
		head *certHead
		key  crypto.Signer
	)
	err = s.store.View(ctx, func(tx store.Tx) error {
		if head, err = loadPending(tx, vault, name); err != nil {
			return err
		}
		key, err = s.pendingKey(vault, head)
		return err
	})
	if err != nil {
		return Certificate{}, err
	}
	p := head.Pending

	// The chain must be for that key, and current.
	chain, err := issuer.Merge(key, x5c)
	if err != nil {
		return Certificate{}, badParameter("x5c: %s", err)
	}
	now := s.now().UTC().Truncate(time.Second)
	if !now.Before(chain[0].NotAfter) {
		return Certificate{}, badParameter("x5c: the certificate expired on %s", chain[0].NotAfter.UTC().Format(time.RFC3339))
	}
	rec, sec, err := s.prepareVersion(vault, name, p.Version, key, chain, head.Policy, now)
	if err != nil {
		return Certificate{}, err
	}
	applyVersionInput(rec, sec, pendingAttrs(p, attrs), mergeTags(p.Tags, tags))

	err = s.store.Update(ctx, func(tx store.Tx) error {
		cur, err := loadPending(tx, vault, name)
		if err != nil {
			return err
		}
		if cur.Pending.RequestID != p.RequestID || cur.Pending.Status != StatusInProgress {
			return errorf(ErrConflict, "the pending operation of certificate %s changed while merging; read it again", cur.Name)
		}
		head = cur
		completed(head.Pending, "merged")
		return s.putVersion(tx, vault, head, rec, sec, "merged")
	})
	if err != nil {
		return Certificate{}, err
	}
	s.notifyEvents(ctx, vault)
	s.log.Info("certificate merged", "vault", vault, "name", head.Name, "version", rec.Version, "serial", chain[0].SerialNumber.Text(16))
	return rec.certificate(head, v), nil
}

// pendingKey opens the key of an Unknown-issuer request waiting for its
// merge.
func (s *Service) pendingKey(vault string, head *certHead) (crypto.Signer, error) {
	p := head.Pending
	switch {
	case p.Status != StatusInProgress:
		return nil, errorf(ErrConflict, "the pending operation of certificate %s is %s, not inProgress: create a new one", head.Name, p.Status)
	case !issuerIsUnknown(p.Issuer.Name):
		return nil, errorf(ErrConflict, "certificate %s is issued by %s; only a request of issuer Unknown is merged", head.Name, p.Issuer.Name)
	case p.SealedKey == nil:
		return nil, errorf(ErrConflict, "the CSR of certificate %s is not ready yet; poll the pending operation until it has one", head.Name)
	}
	der, err := s.sealer.Open(p.SealedKey, pendingKeyAAD(vault, head.Name, p.RequestID))
	if err != nil {
		return nil, errors.New("opening sealed pending key: the stored record does not open under this vault's master key")
	}
	return parseSigner(der)
}

func issuerIsUnknown(name string) bool { return issuer.CanonicalName(name) == issuer.Unknown }

func pendingAttrs(p *pendingOp, a AttributesUpdate) AttributesUpdate {
	if a.Enabled == nil {
		a.Enabled = p.Enabled
	}
	return a
}

func mergeTags(base, over map[string]string) map[string]string {
	if over != nil {
		return over
	}
	return base
}

func completed(p *pendingOp, how string) {
	p.Status = StatusCompleted
	p.StatusDetails = "The certificate was " + how + "."
	p.SealedKey = nil
	p.Error = nil
}

// CompleteCreation does the work of a creation in progress: it makes the
// key, and signs the certificate (Self, keygate-ca) or writes the CSR
// (Unknown). It does nothing if the operation is no longer the one given
// or no longer in progress. A failure is recorded on the operation.
func (s *Service) CompleteCreation(ctx context.Context, vault, name, requestID string) error {
	head, is, reuse, err := s.creationInputs(ctx, vault, name, requestID)
	if err != nil || head == nil {
		return err
	}
	key, err := s.keyFor(head.Policy, reuse)
	if err == nil {
		if _, unknown := is.(issuer.External); unknown {
			err = s.writeCSR(ctx, vault, head, key)
		} else {
			err = s.signCreation(ctx, vault, head, is, key)
		}
	}
	if err != nil {
		s.failCreation(ctx, vault, name, requestID, err)
	}
	return err
}

// creationInputs loads what a creation needs, or a nil head when there is
// nothing to do.
func (s *Service) creationInputs(ctx context.Context, vault, name, requestID string) (*certHead, issuer.Issuer, crypto.Signer, error) {
	var (
		head  *certHead
		is    issuer.Issuer
		reuse crypto.Signer
	)
	err := s.store.View(ctx, func(tx store.Tx) error {
		h, err := loadPending(tx, vault, name)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Pending.RequestID != requestID || h.Pending.Status != StatusInProgress || h.Pending.SealedKey != nil {
			return nil
		}
		if is, err = s.resolveIssuer(tx, vault, h.Pending.Issuer.Name); err != nil {
			return err
		}
		if h.Policy.Key.ReuseKey && h.Current != "" {
			if reuse, err = s.currentKey(tx, vault, h); err != nil {
				return err
			}
		}
		head = h
		return nil
	})
	return head, is, reuse, err
}

func (s *Service) currentKey(tx store.Tx, vault string, head *certHead) (crypto.Signer, error) {
	rec := new(certVersion)
	if err := getJSON(tx, certVersionsBucket(vault), versionKey(head.Name, head.Current), rec); err != nil {
		return nil, err
	}
	return s.openCertKey(vault, head.Name, rec)
}

// keyFor returns reuse when the policy reuses keys and the key still
// fits it, or a new key. New RSA keys take a while.
func (s *Service) keyFor(pol Policy, reuse crypto.Signer) (crypto.Signer, error) {
	if reuse != nil {
		if spec, err := pki.SpecOf(reuse.Public()); err == nil && spec == pol.Key.Spec() {
			return reuse, nil
		}
	}
	return pki.GenerateKey(pol.Key.Spec())
}

func (s *Service) writeCSR(ctx context.Context, vault string, head *certHead, key crypto.Signer) error {
	p := head.Pending
	tmpl, err := head.Policy.X509.Template(s.now().UTC())
	if err != nil {
		return err
	}
	csr, err := pki.CreateCSR(tmpl, key)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding private key: %w", err)
	}
	sealed, err := s.sealer.Seal(der, pendingKeyAAD(vault, head.Name, p.RequestID))
	if err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx store.Tx) error {
		cur, err := loadPending(tx, vault, head.Name)
		if err != nil || cur.Pending.RequestID != p.RequestID || cur.Pending.Status != StatusInProgress {
			return err // gone or cancelled meanwhile: drop the key
		}
		cur.Pending.CSR = csr
		cur.Pending.SealedKey = sealed
		cur.Pending.StatusDetails = "Pending certificate created. Please Perform Merge to complete the request."
		return putJSON(tx, certsBucket(vault), nameKey(cur.Name), cur)
	})
}

func (s *Service) signCreation(ctx context.Context, vault string, head *certHead, is issuer.Issuer, key crypto.Signer) error {
	p := head.Pending
	now := s.now().UTC().Truncate(time.Second)
	chain, err := s.issue(is, head.Policy, key, now)
	if err != nil {
		return err
	}
	rec, sec, err := s.prepareVersion(vault, head.Name, p.Version, key, chain, head.Policy, now)
	if err != nil {
		return err
	}
	applyVersionInput(rec, sec, AttributesUpdate{Enabled: p.Enabled}, p.Tags)
	committed := false
	err = s.store.Update(ctx, func(tx store.Tx) error {
		committed = false
		cur, err := loadPending(tx, vault, head.Name)
		if err != nil || cur.Pending.RequestID != p.RequestID || cur.Pending.Status != StatusInProgress {
			return err // gone or cancelled meanwhile
		}
		completed(cur.Pending, "created")
		committed = true
		return s.putVersion(tx, vault, cur, rec, sec, "created")
	})
	if err == nil && committed {
		s.notifyEvents(ctx, vault)
		s.log.Info("certificate created", "vault", vault, "name", head.Name, "version", rec.Version,
			"issuer", p.Issuer.Name, "serial", chain[0].SerialNumber.Text(16))
	}
	return err
}

// issue signs a certificate by pol for key.
func (s *Service) issue(is issuer.Issuer, pol Policy, key crypto.Signer, now time.Time) ([]*x509.Certificate, error) {
	tmpl, err := pol.X509.Template(now)
	if err != nil {
		return nil, err
	}
	return is.Issue(tmpl, key)
}

// failCreation records why a creation failed on its operation.
func (s *Service) failCreation(ctx context.Context, vault, name, requestID string, cause error) {
	msg := "The vault failed to make the certificate."
	var ve *Error
	if errors.As(cause, &ve) {
		msg = ve.Message
	}
	s.log.Warn("certificate creation failed", "vault", vault, "name", name, "err", cause)
	err := s.store.Update(ctx, func(tx store.Tx) error {
		cur, err := loadPending(tx, vault, name)
		if err != nil || cur.Pending.RequestID != requestID || cur.Pending.Status != StatusInProgress {
			return err
		}
		cur.Pending.Status = StatusFailed
		cur.Pending.StatusDetails = msg
		cur.Pending.Error = &OperationError{Code: "CertificateCreationFailed", Message: msg}
		return putJSON(tx, certsBucket(vault), nameKey(cur.Name), cur)
	})
	if err != nil {
		s.log.Warn("recording certificate creation failure failed", "vault", vault, "name", name, "err", err)
	}
}
