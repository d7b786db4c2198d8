package httpapi

import (
	"encoding/base64"
	"net/http"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/vault"
)

// Reserved first segments under /certificates: a certificate cannot be
// named so, as in Key Vault.
const (
	segIssuers  = "issuers"
	segContacts = "contacts"
)

// certificateRoutes registers the certificates API. The paths
// /certificates/issuers/{name} and /certificates/{name}/policy overlap,
// which ServeMux refuses to register apart, so two-segment paths go
// through one pattern per method that picks the operation by segment; each
// operation still runs through op.
func (h *Handler) certificateRoutes() {
	cert := func(perm string, fn opFunc) http.Handler {
		return h.op(authz.KindCertificates, perm, "CertificateNotFound", fn)
	}
	iss := func(perm string, fn opFunc) http.Handler {
		return h.op(authz.KindCertificates, perm, "CertificateIssuerNotFound", fn)
	}
	// Contacts and pending operations have not-found codes of their own,
	// as Key Vault answers them.
	contacts := func(perm string, fn opFunc) http.Handler {
		return h.op(authz.KindCertificates, perm, "ContactsNotFound", fn)
	}
	pending := func(perm string, fn opFunc) http.Handler {
		return h.op(authz.KindCertificates, perm, "PendingCertificateNotFound", fn)
	}
	m := h.mux
	m.Handle("POST /certificates/{name}/create", cert(authz.CertificateCreate, h.createCertificate))
	m.Handle("POST /certificates/{name}/import", cert(authz.CertificateImport, h.importCertificate))
	m.Handle("POST /certificates/{name}/backup", cert(authz.CertificateBackup, h.backupCertificate))
	m.Handle("POST /certificates/restore", cert(authz.CertificateRestore, h.restoreCertificate))
	m.Handle("POST /certificates/{name}/pending/merge", cert(authz.CertificateCreate, h.mergeCertificate))
	m.Handle("GET /certificates/{name}/{$}", cert(authz.CertificateGet, h.getCertificate))
	m.Handle("GET /certificates", cert(authz.CertificateList, h.listCertificates))
	m.Handle("DELETE /certificates/{name}", cert(authz.CertificateDelete, h.deleteCertificate))
	m.Handle("GET /deletedcertificates", cert(authz.CertificateList, h.listDeletedCertificates))
	m.Handle("GET /deletedcertificates/{name}", cert(authz.CertificateGet, h.getDeletedCertificate))
	m.Handle("DELETE /deletedcertificates/{name}", cert(authz.CertificatePurge, h.purgeCertificate))
	m.Handle("POST /deletedcertificates/{name}/recover", cert(authz.CertificateRecover, h.recoverCertificate))

	m.Handle("GET /certificates/contacts", contacts(authz.CertificateManageContacts, h.getContacts))
	m.Handle("PUT /certificates/contacts", contacts(authz.CertificateManageContacts, h.setContacts))
	m.Handle("DELETE /certificates/contacts", contacts(authz.CertificateManageContacts, h.deleteContacts))
	m.Handle("GET /certificates/issuers", iss(authz.CertificateListIssuers, h.listIssuers))
	m.Handle("PUT /certificates/issuers/{name}", iss(authz.CertificateSetIssuers, h.setIssuer))
	m.Handle("GET /certificates/issuers/{name}/chain", iss(authz.CertificateGetIssuers, h.issuerChain))

	bySegment := map[string]map[string]http.Handler{
		http.MethodGet: {
			segIssuers: iss(authz.CertificateGetIssuers, h.getIssuer),
			"policy":   cert(authz.CertificateGet, h.getPolicy),
			"pending":  pending(authz.CertificateGet, h.getOperation),
			"versions": cert(authz.CertificateList, h.listCertificateVersions),
			"":         cert(authz.CertificateGet, h.getCertificate),
		},
		http.MethodPatch: {
			segIssuers: iss(authz.CertificateSetIssuers, h.updateIssuer),
			"policy":   cert(authz.CertificateUpdate, h.updatePolicy),
			"pending":  pending(authz.CertificateUpdate, h.cancelOperation),
			"":         cert(authz.CertificateUpdate, h.updateCertificate),
		},
		http.MethodDelete: {
			segIssuers: iss(authz.CertificateDeleteIssuers, h.deleteIssuer),
			"pending":  pending(authz.CertificateUpdate, h.deleteOperation),
		},
	}
	for method, ops := range bySegment {
		m.Handle(method+" /certificates/{name}/{version}", pickBySegment(ops))
	}
	m.Handle("PATCH /certificates/{name}/{$}", bySegment[http.MethodPatch][""])
}

// pickBySegment routes /certificates/{name}/{version}: issuers/{name} to
// the issuer operation, {name}/policy, /pending and /versions to theirs,
// and anything else to the version operation ("" in ops).
func pickBySegment(ops map[string]http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first, second := r.PathValue("name"), r.PathValue("version")
		next := ops[""]
		switch {
		case first == segIssuers && ops[segIssuers] != nil:
			r.SetPathValue("name", second)
			next = ops[segIssuers]
		case ops[second] != nil:
			next = ops[second]
		}
		if next == nil {
			writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed",
				Message: r.Method + " is not allowed on " + r.URL.Path})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// certName reads and checks the certificate name of the path.
func certName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := vault.ValidateName(name); err != nil {
		return "", err
	}
	if name == segIssuers || name == segContacts {
		return "", badRequest("name: %s is reserved and cannot name a certificate", name)
	}
	return name, nil
}

// certNameAndVersion is certName with the optional version, which the
// policy, pending and versions segments are not.
func certNameAndVersion(r *http.Request) (string, string, error) {
	name, err := certName(r)
	if err != nil {
		return "", "", err
	}
	version := r.PathValue("version")
	if version != "" {
		if err := vault.ValidateVersion(version); err != nil {
			return "", "", err
		}
	}
	return name, version, nil
}

// createCertificateRequest is Key Vault's CertificateCreateParameters.
type createCertificateRequest struct {
	Policy            *policyJSON        `json:"policy"`
	Attributes        *attributesJSON    `json:"attributes"`
	Tags              map[string]*string `json:"tags"`
	PreserveCertOrder *bool              `json:"preserveCertOrder"`
}

func (h *Handler) createCertificate(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	var req createCertificateRequest
	if err := decodeBody(w, r, maxBodyBytes, &req); err != nil {
		return err
	}
	op, err := h.vaults.CreateCertificate(ctx(r), c.vault, name, vault.CreateCertificate{
		Policy:     req.Policy.input(),
		Attributes: req.Attributes.update(),
		Tags:       tagsIn(req.Tags),
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", objectID(r, "certificates", name, "pending")+"?api-version="+c.apiVersion)
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusAccepted, operationOut(r, op))
	return nil
}

// importCertificateRequest is Key Vault's CertificateImportParameters.
// pwd is secret: the request is never logged.
type importCertificateRequest struct {
	Value             *string            `json:"value"`
	Password          string             `json:"pwd"`
	Policy            *policyJSON        `json:"policy"`
	Attributes        *attributesJSON    `json:"attributes"`
	Tags              map[string]*string `json:"tags"`
	PreserveCertOrder *bool              `json:"preserveCertOrder"`
}

// maxImportBytes bounds an import: a PFX with a long chain, base64 and
// JSON-escaped.
const maxImportBytes = 1 << 20

func (h *Handler) importCertificate(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	var req importCertificateRequest
	if err := decodeBody(w, r, maxImportBytes, &req); err != nil {
		return err
	}
	if req.Value == nil {
		return badRequest("value: required: a PFX in base64, or PEM text with the key and certificates")
	}
	cert, err := h.vaults.ImportCertificate(ctx(r), c.vault, name, vault.ImportCertificate{
		Value:      *req.Value,
		Password:   req.Password,
		Policy:     req.Policy.input(),
		Attributes: req.Attributes.update(),
		Tags:       tagsIn(req.Tags),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, certificateJSON(r, cert))
	return nil
}

func (h *Handler) getCertificate(w http.ResponseWriter, r *http.Request, c *call) error {
	name, version, err := certNameAndVersion(r)
	if err != nil {
		return err
	}
	cert, err := h.vaults.GetCertificate(ctx(r), c.vault, name, version)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, certificateJSON(r, cert))
	return nil
}

// updateCertificateRequest is Key Vault's CertificateUpdateParameters.
type updateCertificateRequest struct {
	Policy     *policyJSON        `json:"policy"`
	Attributes *attributesJSON    `json:"attributes"`
	Tags       map[string]*string `json:"tags"`
}

func (h *Handler) updateCertificate(w http.ResponseWriter, r *http.Request, c *call) error {
	name, version, err := certNameAndVersion(r)
	if err != nil {
		return err
	}
	var req updateCertificateRequest
	if err := decodeBody(w, r, maxBodyBytes, &req); err != nil {
		return err
	}
	cert, err := h.vaults.UpdateCertificate(ctx(r), c.vault, name, version, vault.CertificateUpdate{
		Attributes: req.Attributes.update(),
		Tags:       tagsIn(req.Tags),
		Policy:     req.Policy.input(),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, certificateJSON(r, cert))
	return nil
}

func (h *Handler) listCertificates(w http.ResponseWriter, r *http.Request, c *call) error {
	pg, err := readPage(r)
	if err != nil {
		return err
	}
	items, next, err := h.vaults.ListCertificates(ctx(r), c.vault, pg.after, pg.max, pg.includePending)
	if err != nil {
		return err
	}
	out := make([]certificateBundle, len(items))
	for i, p := range items {
		out[i] = certificateItem(r, p, false)
	}
	writeJSON(w, http.StatusOK, listJSON[certificateBundle]{Value: out, NextLink: pg.nextLink(r, c, next)})
	return nil
}

func (h *Handler) listCertificateVersions(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	pg, err := readPage(r)
	if err != nil {
		return err
	}
	items, next, err := h.vaults.ListCertificateVersions(ctx(r), c.vault, name, pg.after, pg.max)
	if err != nil {
		return err
	}
	out := make([]certificateBundle, len(items))
	for i, p := range items {
		out[i] = certificateItem(r, p, true)
	}
	writeJSON(w, http.StatusOK, listJSON[certificateBundle]{Value: out, NextLink: pg.nextLink(r, c, next)})
	return nil
}

func (h *Handler) getPolicy(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	p, err := h.vaults.CertificatePolicy(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toPolicyJSON(r, name, p))
	return nil
}

func (h *Handler) updatePolicy(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	var req policyJSON
	if err := decodeBody(w, r, maxBodyBytes, &req); err != nil {
		return err
	}
	p, err := h.vaults.UpdateCertificatePolicy(ctx(r), c.vault, name, *req.input())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toPolicyJSON(r, name, p))
	return nil
}

func (h *Handler) getOperation(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	op, err := h.vaults.CertificateOperation(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, operationOut(r, op))
	return nil
}

// updateOperationRequest is Key Vault's CertificateOperationUpdateParameter.
type updateOperationRequest struct {
	CancellationRequested *bool `json:"cancellation_requested"`
}

func (h *Handler) cancelOperation(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	var req updateOperationRequest
	if err := decodeBody(w, r, maxBodyBytes, &req); err != nil {
		return err
	}
	if req.CancellationRequested == nil {
		return badRequest("cancellation_requested: required")
	}
	var op vault.Operation
	if *req.CancellationRequested {
		op, err = h.vaults.CancelCertificateOperation(ctx(r), c.vault, name)
	} else {
		op, err = h.vaults.CertificateOperation(ctx(r), c.vault, name)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, operationOut(r, op))
	return nil
}

func (h *Handler) deleteOperation(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	op, err := h.vaults.DeleteCertificateOperation(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, operationOut(r, op))
	return nil
}

// mergeRequest is Key Vault's CertificateMergeParameters.
type mergeRequest struct {
	X5C        []string           `json:"x5c"`
	Attributes *attributesJSON    `json:"attributes"`
	Tags       map[string]*string `json:"tags"`
}

func (h *Handler) mergeCertificate(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	var req mergeRequest
	if err := decodeBody(w, r, maxImportBytes, &req); err != nil {
		return err
	}
	ders := make([][]byte, len(req.X5C))
	for i, s := range req.X5C {
		if ders[i], err = decodeBase64Std(s); err != nil {
			return badRequest("x5c[%d]: not base64", i)
		}
	}
	cert, err := h.vaults.MergeCertificate(ctx(r), c.vault, name, ders, req.Attributes.update(), tagsIn(req.Tags))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, certificateJSON(r, cert))
	return nil
}

// decodeBase64Std accepts standard base64 with or without padding.
func decodeBase64Std(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

func (h *Handler) deleteCertificate(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	d, err := h.vaults.DeleteCertificate(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deletedCertificateJSON(r, d))
	return nil
}

func (h *Handler) getDeletedCertificate(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	d, err := h.vaults.DeletedCertificate(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deletedCertificateJSON(r, d))
	return nil
}

func (h *Handler) listDeletedCertificates(w http.ResponseWriter, r *http.Request, c *call) error {
	pg, err := readPage(r)
	if err != nil {
		return err
	}
	items, next, err := h.vaults.ListDeletedCertificates(ctx(r), c.vault, pg.after, pg.max)
	if err != nil {
		return err
	}
	out := make([]certificateBundle, len(items))
	for i, d := range items {
		b := certificateItem(r, d.CertificateProperties, false)
		b.RecoveryID = objectID(r, "deletedcertificates", d.Name, "")
		b.DeletedDate = d.DeletedDate.Unix()
		b.ScheduledPurgeDate = d.ScheduledPurgeDate.Unix()
		out[i] = b
	}
	writeJSON(w, http.StatusOK, listJSON[certificateBundle]{Value: out, NextLink: pg.nextLink(r, c, next)})
	return nil
}

func (h *Handler) purgeCertificate(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	if err := h.vaults.PurgeCertificate(ctx(r), c.vault, name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) recoverCertificate(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	cert, err := h.vaults.RecoverCertificate(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, certificateJSON(r, cert))
	return nil
}

func (h *Handler) backupCertificate(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := certName(r)
	if err != nil {
		return err
	}
	blob, err := h.vaults.BackupCertificate(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, backupJSON{Value: base64.RawURLEncoding.EncodeToString(blob)})
	return nil
}

func (h *Handler) restoreCertificate(w http.ResponseWriter, r *http.Request, c *call) error {
	blob, err := readBackup(w, r)
	if err != nil {
		return err
	}
	cert, err := h.vaults.RestoreCertificate(ctx(r), c.vault, blob)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, certificateJSON(r, cert))
	return nil
}
