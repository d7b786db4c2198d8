package identity

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/store"
)

// The endpoints through which host agents obtain the tokens of managed
// identities. They are keygate's own, not Entra's: Azure's platform hands
// its agents tokens by means it does not publish. A request authenticates
// with HTTP Basic, the host's name as user and its enrolment credential as
// password, over the authority's HTTPS:
//
//	GET  /{tenant}/managedidentity/host   the host and its identities
//	POST /{tenant}/managedidentity/token  a token for one of them
//
// The token request is a form with resource (required) and at most one of
// client_id, object_id and mi_res_id, as the App Service protocol has
// them; with none, the host's only identity is chosen. The authority, not
// the agent, decides which identities a host may have tokens for.

// Operation names in the audit log.
const (
	opHostGet          = "ManagedIdentityHostGet"
	opManagedToken     = "ManagedIdentityToken"
	opClientCredential = "ClientCredentialsToken"
)

// HostInfo is the answer of GET managedidentity/host.
type HostInfo struct {
	Name                string             `json:"name"`
	Identities          []HostIdentityInfo `json:"identities"`
	CredentialExpiresOn int64              `json:"credentialExpiresOn"` // Unix seconds
}

// HostIdentityInfo is one identity assigned to a host.
type HostIdentityInfo struct {
	Name        string `json:"name"`
	ClientID    string `json:"clientId"`
	PrincipalID string `json:"principalId"`
	ResourceID  string `json:"resourceId"`
}

// ManagedTokenResponse is the answer of POST managedidentity/token: the
// App Service protocol's token response, which the agent passes on, plus
// the identity's ids and the credential's expiry for the agent.
type ManagedTokenResponse struct {
	AccessToken         string `json:"access_token"`
	ExpiresOn           string `json:"expires_on"` // Unix seconds, as digits
	Resource            string `json:"resource"`
	TokenType           string `json:"token_type"`
	ClientID            string `json:"client_id"`
	ObjectID            string `json:"object_id"`
	MIResourceID        string `json:"mi_res_id"`
	CredentialExpiresOn int64  `json:"credential_expires_on"`
}

// Refusals of the host endpoints. error is the code an agent branches on.
var (
	errHostUnauthorized = &oauthError{http.StatusUnauthorized, "invalid_client", 0,
		"Unknown host or wrong enrolment credential."}
	errHostExpired = &oauthError{http.StatusUnauthorized, "credential_expired", 0,
		"The host's enrolment credential has expired; issue a new one with `keygate identity host credential`."}
	errNoResource = &oauthError{http.StatusBadRequest, "invalid_request", 0,
		"The request must name a resource."}
	errManySelectors = &oauthError{http.StatusBadRequest, "invalid_request", 0,
		"Give at most one of client_id, object_id and mi_res_id."}
	errUnknownResource = &oauthError{http.StatusBadRequest, "invalid_resource", 0,
		"The resource is not one this authority issues tokens for."}
)

// identityNotAssigned is the refusal of a selector that names no identity
// assigned to the host.
func identityNotAssigned(sel selector) *oauthError {
	return &oauthError{http.StatusBadRequest, "identity_not_assigned", 0,
		"No managed identity with " + sel.kind + " " + quoteParam(sel.value) + " is assigned to this host."}
}

// selector is how a token request chooses an identity.
type selector struct {
	kind  string // client_id, object_id, mi_res_id, or "" for the only one
	value string
}

// matches reports whether mi is the identity s names.
func (s selector) matches(mi ManagedIdentity) bool {
	switch s.kind {
	case "client_id":
		return strings.EqualFold(mi.ClientID, s.value)
	case "object_id":
		return strings.EqualFold(mi.PrincipalID, s.value)
	case "mi_res_id":
		return strings.EqualFold(mi.ResourceID, s.value)
	}
	return false
}

// hostIdentities returns the identities assigned to rec's host.
func (a *Authority) hostIdentities(ctx context.Context, rec hostRecord) ([]ManagedIdentity, error) {
	st, err := a.current()
	if err != nil {
		return nil, err
	}
	var out []ManagedIdentity
	err = a.cfg.Store.View(ctx, func(tx store.Tx) error {
		out = out[:0]
		for _, key := range rec.Identities {
			mi, err := loadManaged(tx, key)
			if errors.Is(err, ErrIdentityNotFound) {
				continue // deleted since; DeleteManagedIdentity unassigns it
			}
			if err != nil {
				return err
			}
			out = append(out, mi.identity(st.tenantID))
		}
		return nil
	})
	return out, err
}

// serveHost answers GET managedidentity/host.
func (a *Authority) serveHost(w http.ResponseWriter, r *http.Request, rec *audit.Record) {
	host, oerr := a.hostFromRequest(r, rec)
	if oerr != nil {
		a.refuseHost(w, rec, oerr)
		return
	}
	ids, err := a.hostIdentities(r.Context(), host)
	if err != nil {
		a.refuseHost(w, rec, a.storeRefusal("loading host identities", err))
		return
	}
	info := HostInfo{Name: host.Name, Identities: []HostIdentityInfo{}, CredentialExpiresOn: host.CredentialExpires.Unix()}
	for _, mi := range ids {
		info.Identities = append(info.Identities, HostIdentityInfo{
			Name: mi.Name, ClientID: mi.ClientID, PrincipalID: mi.PrincipalID, ResourceID: mi.ResourceID,
		})
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, info)
}

// serveManagedToken answers POST managedidentity/token.
func (a *Authority) serveManagedToken(w http.ResponseWriter, r *http.Request, rec *audit.Record) {
	form, oerr := readForm(w, r)
	if oerr != nil {
		a.refuseHost(w, rec, oerr)
		return
	}
	host, oerr := a.hostFromRequest(r, rec)
	if oerr != nil {
		a.refuseHost(w, rec, oerr)
		return
	}
	sel, resource, oerr := parseManagedRequest(form)
	if oerr != nil {
		a.refuseHost(w, rec, oerr)
		return
	}
	aud, ok := a.audience(resource)
	if !ok {
		a.refuseHost(w, rec, errUnknownResource)
		return
	}

	// The identity must be assigned to this host: the authority enforces
	// it, whatever the agent asked.
	mi, oerr := a.chooseIdentity(r.Context(), host, sel)
	if oerr != nil {
		a.refuseHost(w, rec, oerr)
		return
	}
	rec.ObjectName = mi.Name
	rec.CallerObjectID, rec.CallerClientID = mi.PrincipalID, mi.ClientID

	token, expires, err := a.issue(mi.principal(), aud, mi.ResourceID)
	if err != nil {
		a.log.Error("issuing managed identity token", "identity", mi.Name, "host", host.Name, "err", err)
		a.refuseHost(w, rec, errServer)
		return
	}
	a.log.Debug("issued managed identity token", "identity", mi.Name, "host", host.Name, "audience", aud)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, ManagedTokenResponse{
		AccessToken: token, ExpiresOn: strconv.FormatInt(expires.Unix(), 10),
		Resource: resource, TokenType: "Bearer",
		ClientID: mi.ClientID, ObjectID: mi.PrincipalID, MIResourceID: mi.ResourceID,
		CredentialExpiresOn: host.CredentialExpires.Unix(),
	})
}

// parseManagedRequest reads the resource and the identity selector of a
// token request.
func parseManagedRequest(form formValues) (selector, string, *oauthError) {
	resource := form.Get("resource")
	if resource == "" {
		return selector{}, "", errNoResource
	}
	var sel selector
	for _, kind := range []string{"client_id", "object_id", "mi_res_id"} {
		v := form.Get(kind)
		if v == "" {
			continue
		}
		if sel.kind != "" {
			return selector{}, "", errManySelectors
		}
		sel = selector{kind: kind, value: v}
	}
	return sel, resource, nil
}

// chooseIdentity returns the identity sel names among the host's, or the
// host's only identity when sel names none.
func (a *Authority) chooseIdentity(ctx context.Context, host hostRecord, sel selector) (ManagedIdentity, *oauthError) {
	ids, err := a.hostIdentities(ctx, host)
	if err != nil {
		return ManagedIdentity{}, a.storeRefusal("loading host identities", err)
	}
	if sel.kind == "" {
		if len(ids) == 1 {
			return ids[0], nil
		}
		return ManagedIdentity{}, &oauthError{http.StatusBadRequest, "identity_not_assigned", 0,
			"This host has " + strconv.Itoa(len(ids)) + " managed identities; choose one with client_id, object_id or mi_res_id."}
	}
	for _, mi := range ids {
		if sel.matches(mi) {
			return mi, nil
		}
	}
	return ManagedIdentity{}, identityNotAssigned(sel)
}

// hostFromRequest authenticates the host that sent r.
func (a *Authority) hostFromRequest(r *http.Request, rec *audit.Record) (hostRecord, *oauthError) {
	name, cred, ok := r.BasicAuth()
	if !ok || name == "" || cred == "" {
		return hostRecord{}, errHostUnauthorized
	}
	// A credential pasted as the user name must not reach the audit log.
	if ValidateHostName(name) == nil && !strings.HasPrefix(name, credentialPrefix) {
		rec.CallerHost = name
	}
	host, err := a.authenticateHost(r.Context(), name, cred)
	switch {
	case errors.Is(err, errBadHostCredential):
		return hostRecord{}, errHostUnauthorized
	case errors.Is(err, errHostCredentialExpired):
		e := *errHostExpired
		e.message = "The enrolment credential of host " + quoteParam(host.Name) + " expired at " +
			host.CredentialExpires.UTC().Format(time.RFC3339) + "; issue a new one with `keygate identity host credential`."
		return hostRecord{}, &e
	case err != nil:
		return hostRecord{}, a.storeRefusal("authenticating host", err)
	}
	return host, nil
}

// storeRefusal logs a failure to read the store and returns the refusal
// for it.
func (a *Authority) storeRefusal(doing string, err error) *oauthError {
	if errors.Is(err, store.ErrUnavailable) {
		return errUnavailable
	}
	a.log.Error(doing, "err", err)
	return errServer
}

// hostErrorBody is the body of a refusal of the host endpoints.
type hostErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// refuseHost logs and answers a refused host request.
func (a *Authority) refuseHost(w http.ResponseWriter, rec *audit.Record, e *oauthError) {
	a.log.Info("host request refused", "host", rec.CallerHost, "error", e.code, "reason", e.message)
	rec.Reason = e.message
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, e.status, hostErrorBody{Error: e.code, ErrorDescription: e.message})
}

// audited wraps an endpoint so that each request leaves one audit record,
// whatever its outcome.
func (a *Authority) audited(operation string, fn func(http.ResponseWriter, *http.Request, *audit.Record)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &audit.Record{
			Source: audit.SourceAuthority, Operation: operation,
			CallerAddress: authz.PeerAddr(r.RemoteAddr).String(),
			Method:        r.Method, Path: r.URL.Path,
			RequestID: audit.NewRequestID(),
		}
		w.Header().Set("x-ms-request-id", rec.RequestID)
		rw := audit.NewRecorder(w)
		if audit.Refusing(a.audit) {
			rec.Reason = audit.RefusalMessage
			writeJSON(rw, http.StatusServiceUnavailable, hostErrorBody{Error: "temporarily_unavailable", ErrorDescription: audit.RefusalMessage + "; retry later."})
		} else {
			fn(rw, r, rec)
		}
		rec.Time = a.cfg.Now()
		rec.Status = rw.Status()
		rec.DurationMs = audit.Since(start)
		a.audit.Log(*rec)
	}
}
