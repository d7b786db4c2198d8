package httpapi

import (
	"net/http"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/pki"
)

// keyRoutes serves the public half of certificates' keys, read-only.
func (h *Handler) keyRoutes() {
	key := func(perm string, fn opFunc) http.Handler {
		return h.op(authz.KindKeys, perm, "KeyNotFound", fn)
	}
	h.mux.Handle("GET /keys/{name}/{$}", key("get", h.getKey))
	h.mux.Handle("GET /keys/{name}/{version}", key("get", h.getKey))
}

// keyBundle is Key Vault's KeyBundle for a certificate's key.
type keyBundle struct {
	Key        pki.JWK           `json:"key"`
	Attributes keyAttributesJSON `json:"attributes"`
	Tags       map[string]string `json:"tags,omitempty"`
	Managed    bool              `json:"managed"`
}

type keyAttributesJSON struct {
	attributesJSON
	Exportable bool `json:"exportable"`
}

func (h *Handler) getKey(w http.ResponseWriter, r *http.Request, c *call) error {
	name, version, err := nameAndVersion(r)
	if err != nil {
		return err
	}
	k, err := h.vaults.GetCertificateKey(ctx(r), c.vault, name, version)
	if err != nil {
		return err
	}
	jwk := k.JWK
	jwk.KID = objectID(r, "keys", k.Name, k.Version)
	writeJSON(w, http.StatusOK, keyBundle{
		Key:        jwk,
		Attributes: keyAttributesJSON{attributesJSON: toAttributesJSON(k.Attributes, k.RecoverableDays, k.RecoveryLevel), Exportable: k.Exportable},
		Tags:       k.Tags,
		Managed:    true,
	})
	return nil
}
