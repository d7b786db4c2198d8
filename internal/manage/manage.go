// Package manage serves keygate's management API: vaults with their access
// policies, network rules and soft-delete settings, shaped after the
// properties of Azure's Microsoft.KeyVault/vaults resource, and the
// user-assigned managed identities with the hosts they are assigned to.
// Every call needs an administrator's token for Audience, and every call,
// whatever its outcome, leaves one audit record.
//
//	GET    /management/vaults                                     all vaults
//	GET    /management/vaults/{vault}                             one vault
//	PUT    /management/vaults/{vault}                             create, or update the properties given
//	PATCH  /management/vaults/{vault}                             update the properties given
//	DELETE /management/vaults/{vault}                             soft-delete a vault (recover with PUT, createMode recover)
//	PUT    /management/vaults/{vault}/accessPolicies/{operation}  add, replace or remove
//	POST   /management/vaults/{vault}/roleAssignments             grant an Azure role's shorthand
//	GET    /management/vaults/{vault}/networkRules                the vault's networkAcls
//	POST   /management/vaults/{vault}/networkRules/{operation}    add or remove IP rules
//	GET    /management/deletedVaults                              all soft-deleted vaults
//	GET    /management/deletedVaults/{vault}                      one soft-deleted vault
//	POST   /management/deletedVaults/{vault}/purge                remove a deleted vault and its data for good
//	GET    /management/identities                                 all managed identities
//	GET    /management/identities/{identity}                      one identity
//	PUT    /management/identities/{identity}                      create an identity
//	DELETE /management/identities/{identity}                      delete an identity
//	GET    /management/hosts                                      all hosts
//	GET    /management/hosts/{host}                               one host
//	PUT    /management/hosts/{host}/identities/{identity}         assign an identity to a host
//	DELETE /management/hosts/{host}/identities/{identity}         unassign it
//	POST   /management/hosts/{host}/credential                    issue the host a new credential
//	DELETE /management/hosts/{host}                               delete a host
//	GET    /management/signingKeys                                the authority's token signing keys
//	POST   /management/signingKeys/rotate                         add a signing key; retire expired ones
//	GET    /management/servicePrincipals                          all service principals
//	POST   /management/servicePrincipals                          create one, with a secret or certificates
//	GET    /management/servicePrincipals/{appId}                  one service principal
//	DELETE /management/servicePrincipals/{appId}                  delete it
//	POST   /management/servicePrincipals/{appId}/keyCredentials   register a certificate
//	DELETE /management/servicePrincipals/{appId}/keyCredentials/{thumbprint}
//	POST   /management/servicePrincipals/{appId}/secret           a new client secret
//	DELETE /management/servicePrincipals/{appId}/secret           remove the secret
//	GET    /management/snapshot                                   a consistent copy of the embedded database
//
// Bodies are Azure's where Azure has one ({"properties": {...}}); see the
// request types. A host's enrolment credential appears in the answer of
// the call that creates it, and nowhere else.
package manage

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/identity"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// Audience is the resource that management tokens are issued for; a
// client asks for scope Audience+"/.default".
const Audience = "api://keygate-management"

// Verifier checks bearer tokens. *authz.Verifier implements it.
type Verifier interface {
	Verify(token string) (authz.Principal, error)
}

// Config holds a Handler's dependencies. Vaults, Identities and Verifier
// are required.
type Config struct {
	Vaults     *vault.Service
	Identities *identity.Authority
	Verifier   Verifier

	// VaultURL returns the URL clients reach a vault at, shown as the
	// vault's vaultUri. nil shows none.
	VaultURL func(name string) string

	// ReservedVaultNames are names no vault may take, such as the first
	// label of the server's host name, which addresses the default vault.
	ReservedVaultNames []string

	// Logger receives changes (info) and failures (error); nil discards.
	Logger *slog.Logger

	// Audit receives one record per request; nil discards them.
	Audit audit.Logger

	// Snapshotter copies the store for GET /management/snapshot; nil
	// when the store cannot (a shared database, backed up by its own
	// tools).
	Snapshotter store.Snapshotter

	// Now is the clock of audit records; nil means time.Now.
	Now func() time.Time
}

// Handler serves the management API. It is safe for concurrent use.
type Handler struct {
	vaults     *vault.Service
	identities *identity.Authority
	verifier   Verifier
	vaultURL   func(string) string
	reserved   []string
	log        *slog.Logger
	audit      audit.Logger
	now        func() time.Time

	snapshotter store.Snapshotter
}

// New returns a Handler. It does no I/O.
func New(cfg Config) *Handler {
	h := &Handler{
		vaults: cfg.Vaults, identities: cfg.Identities, verifier: cfg.Verifier,
		vaultURL: cfg.VaultURL, reserved: cfg.ReservedVaultNames,
		log: cfg.Logger, audit: cfg.Audit, now: cfg.Now,
		snapshotter: cfg.Snapshotter,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.audit == nil {
		h.audit = audit.Discard
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.vaultURL == nil {
		h.vaultURL = func(string) string { return "" }
	}
	return h
}

// Register adds the management routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	routes := []struct {
		pattern, operation string
		fn                 handlerFunc
	}{
		{"GET /management/vaults", "VaultList", h.listVaults},
		{"GET /management/vaults/{vault}", "VaultGet", h.getVault},
		{"PUT /management/vaults/{vault}", "VaultPut", h.putVault},
		{"PATCH /management/vaults/{vault}", "VaultPatch", h.patchVault},
		{"DELETE /management/vaults/{vault}", "VaultDelete", h.deleteVault},
		{"PUT /management/vaults/{vault}/accessPolicies/{operation}", "VaultAccessPolicyUpdate", h.updatePolicies},
		{"POST /management/vaults/{vault}/roleAssignments", "VaultRoleAssignmentCreate", h.assignRole},
		{"GET /management/vaults/{vault}/networkRules", "VaultNetworkRuleList", h.listNetworkRules},
		{"POST /management/vaults/{vault}/networkRules/{operation}", "VaultNetworkRuleUpdate", h.updateNetworkRules},
		{"GET /management/deletedVaults", "DeletedVaultList", h.listDeletedVaults},
		{"GET /management/deletedVaults/{vault}", "DeletedVaultGet", h.getDeletedVault},
		{"POST /management/deletedVaults/{vault}/purge", "DeletedVaultPurge", h.purgeDeletedVault},
		{"GET /management/identities", "IdentityList", h.listIdentities},
		{"GET /management/identities/{identity}", "IdentityGet", h.getIdentity},
		{"PUT /management/identities/{identity}", "IdentityCreate", h.putIdentity},
		{"DELETE /management/identities/{identity}", "IdentityDelete", h.deleteIdentity},
		{"GET /management/hosts", "HostList", h.listHosts},
		{"GET /management/hosts/{host}", "HostGet", h.getHost},
		{"PUT /management/hosts/{host}/identities/{identity}", "HostIdentityAssign", h.assignIdentity},
		{"DELETE /management/hosts/{host}/identities/{identity}", "HostIdentityUnassign", h.unassignIdentity},
		{"POST /management/hosts/{host}/credential", "HostCredentialIssue", h.rotateCredential},
		{"DELETE /management/hosts/{host}", "HostDelete", h.deleteHost},
		{"GET /management/signingKeys", "SigningKeyList", h.listSigningKeys},
		{"POST /management/signingKeys/rotate", "SigningKeyRotate", h.rotateSigningKey},
		{"GET /management/snapshot", "ServerSnapshot", h.snapshot},
		{"GET /management/servicePrincipals", "ServicePrincipalList", h.listPrincipals},
		{"POST /management/servicePrincipals", "ServicePrincipalCreate", h.createPrincipal},
		{"GET /management/servicePrincipals/{principal}", "ServicePrincipalGet", h.getPrincipal},
		{"DELETE /management/servicePrincipals/{principal}", "ServicePrincipalDelete", h.deletePrincipal},
		{"POST /management/servicePrincipals/{principal}/keyCredentials", "ServicePrincipalKeyCredentialAdd", h.addKeyCredential},
		{"DELETE /management/servicePrincipals/{principal}/keyCredentials/{thumbprint}", "ServicePrincipalKeyCredentialRemove", h.removeKeyCredential},
		{"POST /management/servicePrincipals/{principal}/secret", "ServicePrincipalSecretReset", h.resetSecret},
		{"DELETE /management/servicePrincipals/{principal}/secret", "ServicePrincipalSecretRemove", h.removeSecret},
	}
	for _, rt := range routes {
		mux.Handle(rt.pattern, h.admin(rt.operation, rt.fn))
	}
}

// request is one management call as the handlers see it: the caller, and
// the audit record they add the object to.
type request struct {
	caller authz.Principal
	rec    *audit.Record
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, req *request) error

// admin lets only an administrator's valid token through, and audits the
// request whatever comes of it.
func (h *Handler) admin(operation string, fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &audit.Record{
			Source: audit.SourceManagement, Operation: operation,
			Vault:         strings.ToLower(r.PathValue("vault")),
			CallerAddress: authz.PeerAddr(r.RemoteAddr).String(),
			Method:        r.Method, Path: r.URL.Path, RequestID: audit.NewRequestID(),
		}
		w.Header().Set("x-ms-request-id", rec.RequestID)
		rw := audit.NewRecorder(w)
		defer func() {
			rec.Time, rec.Status, rec.DurationMs = h.now(), rw.Status(), audit.Since(start)
			h.audit.Log(*rec)
		}()

		if audit.Refusing(h.audit) {
			rec.Reason = audit.RefusalMessage
			writeError(rw, http.StatusServiceUnavailable, "ServiceUnavailable", audit.RefusalMessage+"; retry later.")
			return
		}
		p, status, msg := h.authenticate(r)
		rec.CallerObjectID, rec.CallerClientID = p.ObjectID, p.ClientID
		if status != 0 {
			rec.Reason = msg
			if status == http.StatusForbidden {
				h.log.Info("management request denied", "object_id", p.ObjectID, "method", r.Method, "path", r.URL.Path)
			}
			writeError(rw, status, http.StatusText(status), msg)
			return
		}
		if err := fn(rw, r, &request{caller: p, rec: rec}); err != nil {
			rec.Reason = h.fail(rw, r, p, err)
		}
	})
}

// authenticate returns the administrator r's token names, or the status
// and message of the refusal.
func (h *Handler) authenticate(r *http.Request) (authz.Principal, int, string) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return authz.Principal{}, http.StatusUnauthorized, "a bearer token for " + Audience + " is required"
	}
	p, err := h.verifier.Verify(strings.TrimSpace(token))
	if err != nil {
		return authz.Principal{}, http.StatusUnauthorized, err.Error()
	}
	if !p.HasRole(authz.RoleAdmin) {
		return p, http.StatusForbidden, "object id " + p.ObjectID + " is not a keygate administrator"
	}
	return p, 0, ""
}

// fail answers a failed request and returns the message it sent, which
// is safe to show.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, caller authz.Principal, err error) string {
	status, code, msg := http.StatusInternalServerError, "InternalServerError", "the request failed"
	var re *requestError
	switch {
	case errors.As(err, &re):
		status, code, msg = http.StatusBadRequest, "BadRequest", re.msg
	case errors.Is(err, vault.ErrBadParameter), errors.Is(err, identity.ErrInvalid):
		status, code, msg = http.StatusBadRequest, "BadRequest", err.Error()
	case errors.Is(err, vault.ErrNotFound), errors.Is(err, identity.ErrIdentityNotFound),
		errors.Is(err, identity.ErrHostNotFound), errors.Is(err, identity.ErrPrincipalNotFound),
		errors.Is(err, identity.ErrKeyCredentialNotFound):
		status, code, msg = http.StatusNotFound, "NotFound", err.Error()
	case errors.Is(err, vault.ErrDeletedVaultExists):
		// Azure's code for a name held by a deleted vault.
		status, code, msg = http.StatusConflict, "ConflictError", err.Error()
	case errors.Is(err, vault.ErrPurgeProtected):
		status, code, msg = http.StatusForbidden, "Forbidden", err.Error()
	case errors.Is(err, vault.ErrConflict), errors.Is(err, identity.ErrIdentityExists):
		status, code, msg = http.StatusConflict, "Conflict", err.Error()
	default:
		h.log.Error("management request failed", "method", r.Method, "path", r.URL.Path,
			"object_id", caller.ObjectID, "err", err)
	}
	writeError(w, status, code, msg)
	return msg
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
