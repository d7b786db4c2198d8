package httpapi

import (
	"encoding/base64"
	"net/http"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/vault"
)

func (h *Handler) routes() {
	sec := func(perm string, fn opFunc) http.HandlerFunc {
		return h.op(authz.KindSecrets, perm, "SecretNotFound", fn)
	}
	m := h.mux
	m.Handle("PUT /secrets/{name}", sec(authz.SecretSet, h.setSecret))
	m.Handle("GET /secrets/{name}/{$}", sec(authz.SecretGet, h.getSecret))
	m.Handle("GET /secrets/{name}/{version}", sec(authz.SecretGet, h.getSecret))
	m.Handle("PATCH /secrets/{name}/{$}", sec(authz.SecretSet, h.updateSecret))
	m.Handle("PATCH /secrets/{name}/{version}", sec(authz.SecretSet, h.updateSecret))
	m.Handle("GET /secrets", sec(authz.SecretList, h.listSecrets))
	m.Handle("GET /secrets/{name}/versions", sec(authz.SecretList, h.listSecretVersions))
	m.Handle("DELETE /secrets/{name}", sec(authz.SecretDelete, h.deleteSecret))
	m.Handle("POST /secrets/{name}/backup", sec(authz.SecretBackup, h.backupSecret))
	m.Handle("POST /secrets/restore", sec(authz.SecretRestore, h.restoreSecret))
	m.Handle("GET /deletedsecrets", sec(authz.SecretList, h.listDeletedSecrets))
	m.Handle("GET /deletedsecrets/{name}", sec(authz.SecretList, h.getDeletedSecret))
	m.Handle("DELETE /deletedsecrets/{name}", sec(authz.SecretPurge, h.purgeSecret))
	m.Handle("POST /deletedsecrets/{name}/recover", sec(authz.SecretRecover, h.recoverSecret))
}

// secretBundle is Key Vault's SecretBundle, and with the deletion fields
// set, its DeletedSecretBundle. List items use it without a value.
type secretBundle struct {
	Value              *string           `json:"value,omitempty"`
	ID                 string            `json:"id"`
	ContentType        string            `json:"contentType,omitempty"`
	Attributes         attributesJSON    `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	KID                string            `json:"kid,omitempty"`
	Managed            bool              `json:"managed,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        int64             `json:"deletedDate,omitempty"`
	ScheduledPurgeDate int64             `json:"scheduledPurgeDate,omitempty"`
}

func secretJSON(r *http.Request, p vault.SecretProperties) secretBundle {
	b := secretBundle{
		ID:          objectID(r, "secrets", p.Name, p.Version),
		ContentType: p.ContentType,
		Attributes:  toAttributesJSON(p.Attributes, p.RecoverableDays, p.RecoveryLevel),
		Tags:        p.Tags,
		Managed:     p.Managed,
	}
	if p.Managed {
		// The secret behind a certificate names the certificate's key.
		b.KID = objectID(r, "keys", p.Name, p.Version)
	}
	return b
}

func deletedSecretJSON(r *http.Request, d vault.DeletedSecret) secretBundle {
	b := secretJSON(r, d.SecretProperties)
	b.RecoveryID = objectID(r, "deletedsecrets", d.Name, "")
	b.DeletedDate = d.DeletedDate.Unix()
	b.ScheduledPurgeDate = d.ScheduledPurgeDate.Unix()
	return b
}

// setSecretRequest is Key Vault's SecretSetParameters.
type setSecretRequest struct {
	Value       *string            `json:"value"`
	ContentType string             `json:"contentType"`
	Attributes  *attributesJSON    `json:"attributes"`
	Tags        map[string]*string `json:"tags"`
}

func (h *Handler) setSecret(w http.ResponseWriter, r *http.Request, c *call) error {
	name := r.PathValue("name")
	if err := vault.ValidateName(name); err != nil {
		return err
	}
	var req setSecretRequest
	if err := decodeBody(w, r, maxBodyBytes, &req); err != nil {
		return err
	}
	if req.Value == nil {
		return badRequest("value: required")
	}
	p, err := h.vaults.SetSecret(ctx(r), c.vault, name, vault.SetSecret{
		Value:       *req.Value,
		ContentType: req.ContentType,
		Attributes:  req.Attributes.update(),
		Tags:        tagsIn(req.Tags),
	})
	if err != nil {
		return err
	}
	b := secretJSON(r, p)
	b.Value = req.Value
	writeJSON(w, http.StatusOK, b)
	return nil
}

func (h *Handler) getSecret(w http.ResponseWriter, r *http.Request, c *call) error {
	name, version, err := nameAndVersion(r)
	if err != nil {
		return err
	}
	s, err := h.vaults.GetSecret(ctx(r), c.vault, name, version)
	if err != nil {
		return err
	}
	b := secretJSON(r, s.SecretProperties)
	b.Value = &s.Value
	writeJSON(w, http.StatusOK, b)
	return nil
}

// updateSecretRequest is Key Vault's SecretUpdateParameters.
type updateSecretRequest struct {
	ContentType *string            `json:"contentType"`
	Attributes  *attributesJSON    `json:"attributes"`
	Tags        map[string]*string `json:"tags"`
}

func (h *Handler) updateSecret(w http.ResponseWriter, r *http.Request, c *call) error {
	name, version, err := nameAndVersion(r)
	if err != nil {
		return err
	}
	var req updateSecretRequest
	if err := decodeBody(w, r, maxBodyBytes, &req); err != nil {
		return err
	}
	p, err := h.vaults.UpdateSecret(ctx(r), c.vault, name, version, vault.SecretUpdate{
		ContentType: req.ContentType,
		Attributes:  req.Attributes.update(),
		Tags:        tagsIn(req.Tags),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, secretJSON(r, p))
	return nil
}

func (h *Handler) listSecrets(w http.ResponseWriter, r *http.Request, c *call) error {
	pg, err := readPage(r)
	if err != nil {
		return err
	}
	items, next, err := h.vaults.ListSecrets(ctx(r), c.vault, pg.after, pg.max)
	if err != nil {
		return err
	}
	out := make([]secretBundle, len(items))
	for i, p := range items {
		out[i] = secretJSON(r, p)
		out[i].ID = objectID(r, "secrets", p.Name, "")
	}
	writeJSON(w, http.StatusOK, listJSON[secretBundle]{Value: out, NextLink: pg.nextLink(r, c, next)})
	return nil
}

func (h *Handler) listSecretVersions(w http.ResponseWriter, r *http.Request, c *call) error {
	name := r.PathValue("name")
	if err := vault.ValidateName(name); err != nil {
		return err
	}
	pg, err := readPage(r)
	if err != nil {
		return err
	}
	items, next, err := h.vaults.ListSecretVersions(ctx(r), c.vault, name, pg.after, pg.max)
	if err != nil {
		return err
	}
	out := make([]secretBundle, len(items))
	for i, p := range items {
		out[i] = secretJSON(r, p)
	}
	writeJSON(w, http.StatusOK, listJSON[secretBundle]{Value: out, NextLink: pg.nextLink(r, c, next)})
	return nil
}

func (h *Handler) deleteSecret(w http.ResponseWriter, r *http.Request, c *call) error {
	name := r.PathValue("name")
	if err := vault.ValidateName(name); err != nil {
		return err
	}
	d, err := h.vaults.DeleteSecret(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deletedSecretJSON(r, d))
	return nil
}

func (h *Handler) getDeletedSecret(w http.ResponseWriter, r *http.Request, c *call) error {
	name := r.PathValue("name")
	if err := vault.ValidateName(name); err != nil {
		return err
	}
	d, err := h.vaults.DeletedSecret(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deletedSecretJSON(r, d))
	return nil
}

func (h *Handler) listDeletedSecrets(w http.ResponseWriter, r *http.Request, c *call) error {
	pg, err := readPage(r)
	if err != nil {
		return err
	}
	items, next, err := h.vaults.ListDeletedSecrets(ctx(r), c.vault, pg.after, pg.max)
	if err != nil {
		return err
	}
	out := make([]secretBundle, len(items))
	for i, d := range items {
		out[i] = deletedSecretJSON(r, d)
		out[i].ID = objectID(r, "secrets", d.Name, "")
	}
	writeJSON(w, http.StatusOK, listJSON[secretBundle]{Value: out, NextLink: pg.nextLink(r, c, next)})
	return nil
}

func (h *Handler) purgeSecret(w http.ResponseWriter, r *http.Request, c *call) error {
	name := r.PathValue("name")
	if err := vault.ValidateName(name); err != nil {
		return err
	}
	if err := h.vaults.PurgeSecret(ctx(r), c.vault, name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) recoverSecret(w http.ResponseWriter, r *http.Request, c *call) error {
	name := r.PathValue("name")
	if err := vault.ValidateName(name); err != nil {
		return err
	}
	p, err := h.vaults.RecoverSecret(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, secretJSON(r, p))
	return nil
}

// backupJSON carries a backup blob, base64url without padding as Key Vault
// sends it.
type backupJSON struct {
	Value string `json:"value"`
}

func (h *Handler) backupSecret(w http.ResponseWriter, r *http.Request, c *call) error {
	name := r.PathValue("name")
	if err := vault.ValidateName(name); err != nil {
		return err
	}
	blob, err := h.vaults.BackupSecret(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, backupJSON{Value: base64.RawURLEncoding.EncodeToString(blob)})
	return nil
}

func (h *Handler) restoreSecret(w http.ResponseWriter, r *http.Request, c *call) error {
	blob, err := readBackup(w, r)
	if err != nil {
		return err
	}
	p, err := h.vaults.RestoreSecret(ctx(r), c.vault, blob)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, secretJSON(r, p))
	return nil
}

// readBackup reads the backup blob of a restore request.
func readBackup(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var req backupJSON
	if err := decodeBody(w, r, maxRestoreBytes, &req); err != nil {
		return nil, err
	}
	blob, err := decodeBase64URL(req.Value)
	if err != nil {
		return nil, badRequest("value: not base64url")
	}
	if len(blob) == 0 {
		return nil, badRequest("value: required")
	}
	return blob, nil
}

// decodeBase64URL accepts base64url with or without padding.
func decodeBase64URL(s string) ([]byte, error) {
	if len(s)%4 == 0 {
		if b, err := base64.URLEncoding.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// nameAndVersion reads and checks the path's name and optional version.
func nameAndVersion(r *http.Request) (string, string, error) {
	name, version := r.PathValue("name"), r.PathValue("version")
	if err := vault.ValidateName(name); err != nil {
		return "", "", err
	}
	if version != "" {
		if err := vault.ValidateVersion(version); err != nil {
			return "", "", err
		}
	}
	return name, version, nil
}
