package vault

import (
	"crypto/x509"
	"errors"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// The store layout of certificates, beside the secrets' (records.go):
//
//	vault/{vault}/certificates          {name}            certHead
//	vault/{vault}/certificate-versions  {name}/{version}  certVersion
//	vault/{vault}/leases                {job}/{name}...   lease
//	vault/{vault}/issuers               {name}            issuerRecord
//	vault/{vault}/meta                  contacts, event-seq
//	vault/{vault}/events                {id, 20 digits}   Event
//
// Each certificate version has a secret version of the same name and
// version (managed, holding the PFX or PEM) in the secrets' buckets, written
// in the same transaction.
func certsBucket(vault string) string        { return "vault/" + vault + "/certificates" }
func certVersionsBucket(vault string) string { return "vault/" + vault + "/certificate-versions" }
func leasesBucket(vault string) string       { return "vault/" + vault + "/leases" }

// certHead is one certificate across its versions: its policy, its
// current version and the operation creating the next one.
type certHead struct {
	Name    string    `json:"name"`
	Current string    `json:"current,omitempty"`
	Created time.Time `json:"created"`
	Policy  Policy    `json:"policy"`

	// Pending is the latest creation operation; it stays, completed or
	// failed, until the next one or until deleted.
	Pending *pendingOp `json:"pending,omitempty"`

	Deleted *deletion `json:"deleted,omitempty"`
}

// certVersion is one version of a certificate: the certificate and chain
// in DER, its attributes, and its private key, sealed. The key is kept
// even when it is not exportable, so that a renewal may reuse it.
type certVersion struct {
	Version     string            `json:"version"`
	Created     time.Time         `json:"created"`
	Updated     time.Time         `json:"updated"`
	Enabled     bool              `json:"enabled"`
	NotBefore   time.Time         `json:"nbf"`
	Expires     time.Time         `json:"exp"`
	Tags        map[string]string `json:"tags,omitempty"`
	CER         []byte            `json:"cer"`
	Chain       [][]byte          `json:"chain,omitempty"`
	ContentType string            `json:"contentType"`
	Exportable  bool              `json:"exportable"`
	SealedKey   []byte            `json:"sealedKey"`

	// Marks of lifetime events already recorded for this version, so each
	// is recorded once.
	NearExpiryNoted bool `json:"nearExpiryNoted,omitempty"`
	ExpiryNoted     bool `json:"expiryNoted,omitempty"`
}

// pendingOp is a certificate's creation operation, as Key Vault's
// /pending shows it.
type pendingOp struct {
	RequestID             string            `json:"requestId"`
	Version               string            `json:"version"`
	Issuer                IssuerParams      `json:"issuer"`
	Status                string            `json:"status"`
	StatusDetails         string            `json:"statusDetails,omitempty"`
	Error                 *OperationError   `json:"error,omitempty"`
	CancellationRequested bool              `json:"cancellationRequested"`
	CSR                   []byte            `json:"csr,omitempty"`
	SealedKey             []byte            `json:"sealedKey,omitempty"`
	Enabled               *bool             `json:"enabled,omitempty"`
	Tags                  map[string]string `json:"tags,omitempty"`
	Created               time.Time         `json:"created"`
}

// Operation statuses, as Key Vault reports them.
const (
	StatusInProgress = "inProgress"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
)

// certKeyAAD binds a certificate version's sealed private key to its
// record.
func certKeyAAD(vault, name, version string) []byte {
	return []byte("keygate/v1;vault=" + vault + ";kind=certificate-key;name=" + nameKey(name) + ";version=" + version)
}

// pendingKeyAAD binds the sealed key of a pending request to it.
func pendingKeyAAD(vault, name, requestID string) []byte {
	return []byte("keygate/v1;vault=" + vault + ";kind=pending-key;name=" + nameKey(name) + ";request=" + requestID)
}

func loadCertHead(tx store.Tx, vault, name string) (*certHead, error) {
	head := new(certHead)
	if err := getJSON(tx, certsBucket(vault), nameKey(name), head); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, certNotFound(name)
		}
		return nil, err
	}
	return head, nil
}

// loadLiveCertHead loads a certificate that is not deleted.
func loadLiveCertHead(tx store.Tx, vault, name string) (*certHead, error) {
	head, err := loadCertHead(tx, vault, name)
	if err != nil {
		return nil, err
	}
	if head.Deleted != nil {
		return nil, certNotFound(head.Name)
	}
	return head, nil
}

// loadCertVersion loads a version of a live certificate; an empty
// version means the current one.
func loadCertVersion(tx store.Tx, vault, name, version string) (*certHead, *certVersion, error) {
	head, err := loadLiveCertHead(tx, vault, name)
	if err != nil {
		return nil, nil, err
	}
	if version == "" {
		version = head.Current
	}
	if version == "" {
		return nil, nil, errorf(ErrNotFound, "certificate %s has no completed version yet; see its pending operation", head.Name)
	}
	rec := new(certVersion)
	err = getJSON(tx, certVersionsBucket(vault), versionKey(name, version), rec)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errorf(ErrNotFound, "certificate %s has no version %s", head.Name, quoteName(version))
	}
	return head, rec, err
}

func certNotFound(name string) error {
	return errorf(ErrNotFound, "certificate %s not found", quoteName(name))
}

// leaf parses the version's certificate.
func (r *certVersion) leaf() (*x509.Certificate, error) {
	return x509.ParseCertificate(r.CER)
}
