// Package manage serves keygate's management API: vaults and their access
// policies, shaped after the properties of Azure's Microsoft.KeyVault/vaults
// resource. Every call needs an administrator's token for Audience.
//
//	GET  /management/vaults                                    names of all vaults
//	GET  /management/vaults/{vault}                            one vault
//	PUT  /management/vaults/{vault}/accessPolicies/{operation}  add, replace or remove
//
// The access-policy body is Azure's: {"properties": {"accessPolicies": [...]}}.
// add merges the permissions given into the principal's entry, replace sets
// the entry to exactly them, and remove deletes the principal's entry.
package manage

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/vault"
)

// Audience is the resource that management tokens are issued for; a
// client asks for scope Audience+"/.default".
const Audience = "api://keygate-management"

// Verifier checks bearer tokens. *authz.Verifier implements it.
type Verifier interface {
	Verify(token string) (authz.Principal, error)
}

// Config holds a Handler's dependencies; all but Logger are required.
type Config struct {
	Vaults   *vault.Service
	Verifier Verifier
	Logger   *slog.Logger
}

// Handler serves the management API. It is safe for concurrent use.
type Handler struct {
	vaults   *vault.Service
	verifier Verifier
	log      *slog.Logger
}

// New returns a Handler. It does no I/O.
func New(cfg Config) *Handler {
	h := &Handler{vaults: cfg.Vaults, verifier: cfg.Verifier, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// Register adds the management routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("GET /management/vaults", h.admin(h.listVaults))
	mux.Handle("GET /management/vaults/{vault}", h.admin(h.getVault))
	mux.Handle("PUT /management/vaults/{vault}/accessPolicies/{operation}", h.admin(h.updatePolicies))
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, caller authz.Principal) error

// admin lets only an administrator's valid token through.
func (h *Handler) admin(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			writeError(w, http.StatusUnauthorized, "Unauthorized", "a bearer token for "+Audience+" is required")
			return
		}
		p, err := h.verifier.Verify(strings.TrimSpace(token))
		if err != nil {
			writeError(w, http.StatusUnauthorized, "Unauthorized", err.Error())
			return
		}
		if !p.HasRole(authz.RoleAdmin) {
			h.log.Info("management request denied", "object_id", p.ObjectID, "method", r.Method, "path", r.URL.Path)
			writeError(w, http.StatusForbidden, "Forbidden", "object id "+p.ObjectID+" is not a keygate administrator")
			return
		}
		if err := fn(w, r, p); err != nil {
			h.fail(w, r, p, err)
		}
	})
}

// vaultJSON is a vault as Azure's resource shows it.
type vaultJSON struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Properties vaultProperties `json:"properties"`
}

type vaultProperties struct {
	TenantID                     string               `json:"tenantId"`
	AccessPolicies               []authz.AccessPolicy `json:"accessPolicies"`
	EnableSoftDelete             bool                 `json:"enableSoftDelete"`
	SoftDeleteRetentionInDays    int                  `json:"softDeleteRetentionInDays"`
	EnabledForTemplateDeployment bool                 `json:"enabledForTemplateDeployment"`
}

func toJSON(v *vault.Vault) vaultJSON {
	policies := v.AccessPolicies
	if policies == nil {
		policies = []authz.AccessPolicy{}
	}
	return vaultJSON{
		Name: v.Name,
		Type: "Microsoft.KeyVault/vaults",
		Properties: vaultProperties{
			TenantID:                     v.TenantID,
			AccessPolicies:               policies,
			EnableSoftDelete:             v.EnableSoftDelete,
			SoftDeleteRetentionInDays:    v.SoftDeleteRetentionInDays,
			EnabledForTemplateDeployment: v.EnabledForTemplateDeployment,
		},
	}
}

func (h *Handler) listVaults(w http.ResponseWriter, r *http.Request, _ authz.Principal) error {
	names, err := h.vaults.VaultNames(r.Context())
	if err != nil {
		return err
	}
	out := make([]vaultJSON, 0, len(names))
	for _, n := range names {
		v, err := h.vaults.Vault(r.Context(), n)
		if err != nil {
			return err
		}
		out = append(out, toJSON(v))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (h *Handler) getVault(w http.ResponseWriter, r *http.Request, _ authz.Principal) error {
	v, err := h.vaults.Vault(r.Context(), r.PathValue("vault"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJSON(v))
	return nil
}

// policiesRequest is Azure's VaultAccessPolicyParameters.
type policiesRequest struct {
	Properties struct {
		AccessPolicies []authz.AccessPolicy `json:"accessPolicies"`
	} `json:"properties"`
}

func (h *Handler) updatePolicies(w http.ResponseWriter, r *http.Request, caller authz.Principal) error {
	op := r.PathValue("operation")
	if !slices.Contains([]string{"add", "replace", "remove"}, op) {
		return badRequest("operation: %q is not one of add, replace, remove", op)
	}
	var req policiesRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Properties.AccessPolicies) == 0 {
		return badRequest("properties.accessPolicies: at least one entry is required")
	}
	name := r.PathValue("vault")
	var (
		v   *vault.Vault
		err error
	)
	for _, p := range req.Properties.AccessPolicies {
		v, err = h.applyPolicy(r, name, op, p)
		if err != nil {
			return err
		}
		h.log.Info("access policy changed", "vault", name, "operation", op,
			"object_id", p.ObjectID, "by", caller.ObjectID)
	}
	writeJSON(w, http.StatusOK, toJSON(v))
	return nil
}

func (h *Handler) applyPolicy(r *http.Request, name, op string, p authz.AccessPolicy) (*vault.Vault, error) {
	ctx := r.Context()
	switch op {
	case "remove":
		return h.vaults.DeleteAccessPolicy(ctx, name, p.TenantID, p.ObjectID)
	case "add":
		v, err := h.vaults.Vault(ctx, name)
		if err != nil {
			return nil, err
		}
		p = merged(v.AccessPolicies, p)
	}
	return h.vaults.SetAccessPolicy(ctx, name, p)
}

// merged adds the permissions of the existing entry for p's principal to p.
func merged(existing []authz.AccessPolicy, p authz.AccessPolicy) authz.AccessPolicy {
	for _, q := range existing {
		if q.TenantID == p.TenantID && q.ObjectID == p.ObjectID {
			p.Permissions.Keys = union(q.Permissions.Keys, p.Permissions.Keys)
			p.Permissions.Secrets = union(q.Permissions.Secrets, p.Permissions.Secrets)
			p.Permissions.Certificates = union(q.Permissions.Certificates, p.Permissions.Certificates)
		}
	}
	return p
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.ContainsFunc(out, func(t string) bool { return strings.EqualFold(s, t) }) {
			out = append(out, s)
		}
	}
	return out
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, caller authz.Principal, err error) {
	var re *requestError
	switch {
	case errors.As(err, &re):
		writeError(w, http.StatusBadRequest, "BadRequest", re.msg)
	case errors.Is(err, vault.ErrNotFound):
		writeError(w, http.StatusNotFound, "NotFound", err.Error())
	case errors.Is(err, vault.ErrBadParameter):
		writeError(w, http.StatusBadRequest, "BadRequest", err.Error())
	default:
		h.log.Error("management request failed", "method", r.Method, "path", r.URL.Path,
			"object_id", caller.ObjectID, "err", err)
		writeError(w, http.StatusInternalServerError, "InternalServerError", "the request failed")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
