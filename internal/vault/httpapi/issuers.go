package httpapi

import (
	"context"
	"net/http"

	"github.com/keygate/keygate/internal/pki"
	"github.com/keygate/keygate/internal/vault"
)

// issuerJSON is Key Vault's IssuerBundle and CertificateIssuerSetParameters.
// The password of credentials is accepted and never returned.
type issuerJSON struct {
	ID          string              `json:"id,omitempty"`
	Provider    *string             `json:"provider,omitempty"`
	Credentials *issuerCredsJSON    `json:"credentials,omitempty"`
	OrgDetails  *orgDetailsJSON     `json:"org_details,omitempty"`
	Attributes  *issuerAttributesIn `json:"attributes,omitempty"`
}

type issuerCredsJSON struct {
	AccountID *string `json:"account_id,omitempty"`
	Password  *string `json:"pwd,omitempty"`
}

type orgDetailsJSON struct {
	ID           *string     `json:"id,omitempty"`
	AdminDetails []adminJSON `json:"admin_details,omitempty"`
}

type adminJSON struct {
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
	Email     string `json:"email,omitempty"`
	Phone     string `json:"phone,omitempty"`
}

// issuerAttributesIn is Key Vault's IssuerAttributes; created and updated
// are read-only and ignored on input.
type issuerAttributesIn struct {
	Enabled *bool  `json:"enabled,omitempty"`
	Created *int64 `json:"created,omitempty"`
	Updated *int64 `json:"updated,omitempty"`
}

func (j *issuerJSON) input() vault.IssuerInput {
	in := vault.IssuerInput{Provider: j.Provider}
	if c := j.Credentials; c != nil {
		in.AccountID, in.Password = c.AccountID, c.Password
	}
	if o := j.OrgDetails; o != nil {
		in.OrgID = o.ID
		if o.AdminDetails != nil {
			in.Admins = make([]vault.AdminContact, len(o.AdminDetails))
			for i, a := range o.AdminDetails {
				in.Admins[i] = vault.AdminContact(a)
			}
		}
	}
	if j.Attributes != nil {
		in.Enabled = j.Attributes.Enabled
	}
	return in
}

func issuerOut(r *http.Request, o vault.IssuerObject) issuerJSON {
	created, updated := o.Created.Unix(), o.Updated.Unix()
	out := issuerJSON{
		ID:         baseURL(r) + "/certificates/issuers/" + o.Name,
		Provider:   &o.Provider,
		Attributes: &issuerAttributesIn{Enabled: &o.Enabled, Created: &created, Updated: &updated},
	}
	if o.AccountID != "" {
		out.Credentials = &issuerCredsJSON{AccountID: &o.AccountID}
	}
	if o.OrgID != "" || len(o.Admins) > 0 {
		out.OrgDetails = &orgDetailsJSON{ID: nonEmpty(o.OrgID)}
		for _, a := range o.Admins {
			out.OrgDetails.AdminDetails = append(out.OrgDetails.AdminDetails, adminJSON(a))
		}
	}
	return out
}

func issuerName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	return name, vault.ValidateName(name)
}

func (h *Handler) setIssuer(w http.ResponseWriter, r *http.Request, c *call) error {
	return h.writeIssuer(w, r, c, h.vaults.SetIssuer)
}

func (h *Handler) updateIssuer(w http.ResponseWriter, r *http.Request, c *call) error {
	return h.writeIssuer(w, r, c, h.vaults.UpdateIssuer)
}

func (h *Handler) writeIssuer(w http.ResponseWriter, r *http.Request, c *call,
	write func(context.Context, string, string, vault.IssuerInput) (vault.IssuerObject, error)) error {
	name, err := issuerName(r)
	if err != nil {
		return err
	}
	var req issuerJSON
	if err := decodeBody(w, r, maxBodyBytes, &req); err != nil {
		return err
	}
	o, err := write(ctx(r), c.vault, name, req.input())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, issuerOut(r, o))
	return nil
}

func (h *Handler) getIssuer(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := issuerName(r)
	if err != nil {
		return err
	}
	o, err := h.vaults.Issuer(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, issuerOut(r, o))
	return nil
}

func (h *Handler) deleteIssuer(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := issuerName(r)
	if err != nil {
		return err
	}
	o, err := h.vaults.DeleteIssuer(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, issuerOut(r, o))
	return nil
}

// issuerItem is a list entry of Key Vault's issuers list.
type issuerItem struct {
	ID       string `json:"id"`
	Provider string `json:"provider"`
}

func (h *Handler) listIssuers(w http.ResponseWriter, r *http.Request, c *call) error {
	pg, err := readPage(r)
	if err != nil {
		return err
	}
	items, next, err := h.vaults.ListIssuers(ctx(r), c.vault, pg.after, pg.max)
	if err != nil {
		return err
	}
	out := make([]issuerItem, len(items))
	for i, o := range items {
		out[i] = issuerItem{ID: baseURL(r) + "/certificates/issuers/" + o.Name, Provider: o.Provider}
	}
	writeJSON(w, http.StatusOK, listJSON[issuerItem]{Value: out, NextLink: pg.nextLink(r, c, next)})
	return nil
}

// issuerChain serves a keygate-ca issuer's chain, intermediate then root,
// as PEM, for clients to trust. It is keygate's own addition to the API.
func (h *Handler) issuerChain(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := issuerName(r)
	if err != nil {
		return err
	}
	o, err := h.vaults.Issuer(ctx(r), c.vault, name)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(pki.CertsPEM(o.Chain))
	return nil
}

// contactsJSON is Key Vault's Contacts.
type contactsJSON struct {
	ID       string        `json:"id,omitempty"`
	Contacts []contactJSON `json:"contacts"`
}

type contactJSON struct {
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
}

func contactsOut(r *http.Request, cs []vault.Contact) contactsJSON {
	out := contactsJSON{ID: baseURL(r) + "/certificates/contacts", Contacts: make([]contactJSON, len(cs))}
	for i, c := range cs {
		out.Contacts[i] = contactJSON(c)
	}
	return out
}

func (h *Handler) getContacts(w http.ResponseWriter, r *http.Request, c *call) error {
	cs, err := h.vaults.Contacts(ctx(r), c.vault)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, contactsOut(r, cs))
	return nil
}

func (h *Handler) setContacts(w http.ResponseWriter, r *http.Request, c *call) error {
	var req contactsJSON
	if err := decodeBody(w, r, maxBodyBytes, &req); err != nil {
		return err
	}
	in := make([]vault.Contact, len(req.Contacts))
	for i, ct := range req.Contacts {
		in[i] = vault.Contact(ct)
	}
	cs, err := h.vaults.SetContacts(ctx(r), c.vault, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, contactsOut(r, cs))
	return nil
}

func (h *Handler) deleteContacts(w http.ResponseWriter, r *http.Request, c *call) error {
	cs, err := h.vaults.DeleteContacts(ctx(r), c.vault)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, contactsOut(r, cs))
	return nil
}
