package manage

import (
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/identity"
)

// principalJSON is a service principal, with the property names of
// Microsoft Graph's application and servicePrincipal objects.
type principalJSON struct {
	AppID               string              `json:"appId"`
	ID                  string              `json:"id"`
	DisplayName         string              `json:"displayName"`
	AppRoles            []string            `json:"appRoles"`
	CreatedDateTime     time.Time           `json:"createdDateTime"`
	PasswordCredentials []passwordCredJSON  `json:"passwordCredentials"`
	KeyCredentials      []keyCredentialJSON `json:"keyCredentials"`

	// SecretText is the client secret, in the answer of the call that
	// makes it and nowhere else.
	SecretText string `json:"secretText,omitempty"`
}

type passwordCredJSON struct {
	DisplayName string `json:"displayName"`
}

type keyCredentialJSON struct {
	CustomKeyIdentifier string    `json:"customKeyIdentifier"` // x5t#S256
	DisplayName         string    `json:"displayName"`         // the subject
	StartDateTime       time.Time `json:"startDateTime"`       // when it was added
	EndDateTime         time.Time `json:"endDateTime"`         // the certificate's expiry
	Type                string    `json:"type"`
	Usage               string    `json:"usage"`
}

func keyCredentialDoc(k identity.KeyCredential) keyCredentialJSON {
	return keyCredentialJSON{CustomKeyIdentifier: k.Thumbprint, DisplayName: k.Subject,
		StartDateTime: k.Added, EndDateTime: k.NotAfter, Type: "AsymmetricX509Cert", Usage: "Verify"}
}

func principalDoc(sp identity.ServicePrincipal) principalJSON {
	doc := principalJSON{
		AppID: sp.ClientID, ID: sp.ObjectID, DisplayName: sp.DisplayName, AppRoles: sp.Roles,
		CreatedDateTime: sp.Created, PasswordCredentials: []passwordCredJSON{}, KeyCredentials: []keyCredentialJSON{},
	}
	if doc.AppRoles == nil {
		doc.AppRoles = []string{}
	}
	if sp.HasSecret {
		doc.PasswordCredentials = append(doc.PasswordCredentials, passwordCredJSON{DisplayName: "client secret"})
	}
	for _, k := range sp.KeyCredentials {
		doc.KeyCredentials = append(doc.KeyCredentials, keyCredentialDoc(k))
	}
	return doc
}

func (h *Handler) listPrincipals(w http.ResponseWriter, r *http.Request, _ *request) error {
	sps, err := h.identities.ListServicePrincipals(r.Context())
	if err != nil {
		return err
	}
	out := make([]principalJSON, 0, len(sps))
	for _, sp := range sps {
		out = append(out, principalDoc(sp))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (h *Handler) getPrincipal(w http.ResponseWriter, r *http.Request, req *request) error {
	req.rec.ObjectName = r.PathValue("principal")
	sp, err := h.identities.ServicePrincipal(r.Context(), r.PathValue("principal"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, principalDoc(sp))
	return nil
}

// principalRequest is the body of a principal's creation. Without
// passwordCredential, it gets a secret only when no certificate is given.
type principalRequest struct {
	DisplayName        string           `json:"displayName"`
	KeyCredentials     []keyRequestJSON `json:"keyCredentials"`
	PasswordCredential *bool            `json:"passwordCredential"`
}

// keyRequestJSON carries a certificate: base64 DER (as Graph's key) or
// PEM text.
type keyRequestJSON struct {
	Key string `json:"key"`
}

// der reads the certificate of k; field names it in errors.
func (k keyRequestJSON) der(field string) ([]byte, error) {
	if strings.HasPrefix(strings.TrimSpace(k.Key), "-----BEGIN") {
		block, _ := pem.Decode([]byte(strings.TrimSpace(k.Key)))
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, badRequest("%s.key: not a PEM CERTIFICATE block", field)
		}
		return block.Bytes, nil
	}
	der, err := base64.StdEncoding.DecodeString(k.Key)
	if err != nil || len(der) == 0 {
		return nil, badRequest("%s.key: neither base64 DER nor PEM", field)
	}
	return der, nil
}

// createPrincipal makes a service principal (201). Its secret, if it has
// one, is in this answer and nowhere else. Access to vaults is granted
// separately, by access policies naming its id.
func (h *Handler) createPrincipal(w http.ResponseWriter, r *http.Request, req *request) error {
	var body principalRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	req.rec.ObjectName = truncate(body.DisplayName, 120)
	spec := identity.PrincipalSpec{DisplayName: body.DisplayName, Secret: len(body.KeyCredentials) == 0}
	if body.PasswordCredential != nil {
		spec.Secret = *body.PasswordCredential
	}
	for i, k := range body.KeyCredentials {
		der, err := k.der("keyCredentials[" + strconv.Itoa(i) + "]")
		if err != nil {
			return err
		}
		spec.Certificates = append(spec.Certificates, der)
	}
	sp, secret, err := h.identities.NewServicePrincipal(r.Context(), spec)
	if err != nil {
		return err
	}
	req.rec.ObjectName = sp.ClientID
	h.log.Info("service principal created", "client_id", sp.ClientID, "object_id", sp.ObjectID, "by", req.caller.ObjectID)
	writePrincipal(w, http.StatusCreated, sp, secret)
	return nil
}

// writePrincipal answers with sp and, in the call that made it, its
// secret.
func writePrincipal(w http.ResponseWriter, status int, sp identity.ServicePrincipal, secret string) {
	doc := principalDoc(sp)
	doc.SecretText = secret
	writeJSON(w, status, doc)
}

// deletePrincipal deletes a service principal. Principals holding the
// administrator role (the one of admin.json among them) are kept: deleting
// them here could lock every administrator out.
func (h *Handler) deletePrincipal(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("principal")
	req.rec.ObjectName = id
	sp, err := h.identities.ServicePrincipal(r.Context(), id)
	if err != nil {
		return err
	}
	if slices.Contains(sp.Roles, authz.RoleAdmin) {
		return badRequest("service principal %s holds the keygate administrator role and is not deleted through this API", id)
	}
	if err := h.identities.DeleteServicePrincipal(r.Context(), id); err != nil {
		return err
	}
	h.log.Info("service principal deleted", "client_id", id, "by", req.caller.ObjectID)
	writeJSON(w, http.StatusOK, principalDoc(sp))
	return nil
}

func (h *Handler) addKeyCredential(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("principal")
	req.rec.ObjectName = id
	var body keyRequestJSON
	if err := decode(w, r, &body); err != nil {
		return err
	}
	der, err := body.der("body")
	if err != nil {
		return err
	}
	kc, err := h.identities.AddKeyCredential(r.Context(), id, der)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, keyCredentialDoc(kc))
	return nil
}

func (h *Handler) removeKeyCredential(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("principal")
	req.rec.ObjectName, req.rec.ObjectVersion = id, truncate(r.PathValue("thumbprint"), 64)
	if err := h.identities.RemoveKeyCredential(r.Context(), id, r.PathValue("thumbprint")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// resetSecret gives the principal a new secret, in this answer only.
func (h *Handler) resetSecret(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("principal")
	req.rec.ObjectName = id
	secret, err := h.identities.ResetSecret(r.Context(), id)
	if err != nil {
		return err
	}
	sp, err := h.identities.ServicePrincipal(r.Context(), id)
	if err != nil {
		return err
	}
	writePrincipal(w, http.StatusOK, sp, secret)
	return nil
}

func (h *Handler) removeSecret(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("principal")
	req.rec.ObjectName = id
	if err := h.identities.RemoveSecret(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
