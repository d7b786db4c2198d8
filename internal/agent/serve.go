package agent

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/identity"
)

// HeaderName is the request header that must carry IDENTITY_HEADER.
const HeaderName = "X-IDENTITY-HEADER"

// operation is the name of a token request in the audit log.
const operation = "ManagedIdentityToken"

// clientError is a refusal of a client's request. Its message is safe to
// show: it never holds the header, a credential or a token.
type clientError struct {
	status  int
	code    string
	message string
}

// Refusals with fixed messages.
var (
	errNotLoopback = &clientError{http.StatusForbidden, "forbidden",
		"The identity agent serves processes on this host only."}
	errNoHeader = &clientError{http.StatusUnauthorized, "unauthorized",
		"The " + HeaderName + " header is missing: send the value of IDENTITY_HEADER."}
	errWrongHeader = &clientError{http.StatusUnauthorized, "unauthorized",
		"The " + HeaderName + " header is wrong: send the value of IDENTITY_HEADER that this agent printed."}
	errNoResource = &clientError{http.StatusBadRequest, "invalid_request",
		"The resource parameter is required."}
	errManySelectors = &clientError{http.StatusBadRequest, "invalid_request",
		"Give at most one of client_id, object_id (principal_id) and mi_res_id."}
	errUnreachable = &clientError{http.StatusServiceUnavailable, "temporarily_unavailable",
		"The identity authority cannot be reached and the agent holds no valid token for this identity; retry later."}
)

// tokenResponse is the App Service protocol's token response. expires_on
// is Unix seconds as digits, as App Service sends it; every Azure SDK
// reads that, and the JavaScript one reads nothing else.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresOn   string `json:"expires_on"`
	Resource    string `json:"resource"`
	TokenType   string `json:"token_type"`
	ClientID    string `json:"client_id"`
}

// request is a parsed token request.
type request struct {
	resource string
	kind     string // client_id, object_id, mi_res_id, or "" for the only identity
	value    string
}

// serveToken answers one token request, and audits it.
func (a *Agent) serveToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := audit.Record{
		Source: audit.SourceAgent, Operation: operation, CallerHost: a.cfg.Host,
		CallerAddress: authz.PeerAddr(r.RemoteAddr).String(),
		Method:        r.Method, Path: r.URL.Path, RequestID: audit.NewRequestID(),
	}
	rw := audit.NewRecorder(w)
	defer func() {
		rec.Time, rec.Status, rec.DurationMs = a.now(), rw.Status(), audit.Since(start)
		a.audit.Log(rec)
	}()
	rw.Header().Set("x-ms-request-id", rec.RequestID)
	rw.Header().Set("Cache-Control", "no-store")

	if audit.Refusing(a.audit) {
		rec.Reason = audit.RefusalMessage
		writeJSON(rw, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable", "error_description": audit.RefusalMessage + "; retry later."})
		return
	}
	t, cerr := a.token(r, &rec)
	if cerr != nil {
		a.log.Info("token request refused", "remote_addr", rec.CallerAddress, "identity", rec.ObjectName,
			"status", cerr.status, "reason", cerr.message, "request_id", rec.RequestID)
		rec.Reason = cerr.message
		writeJSON(rw, cerr.status, map[string]string{"error": cerr.code, "error_description": cerr.message})
		return
	}
	writeJSON(rw, http.StatusOK, tokenResponse{
		AccessToken: t.token, ExpiresOn: strconv.FormatInt(t.expires.Unix(), 10),
		Resource: t.resource, TokenType: "Bearer", ClientID: t.clientID,
	})
}

// token runs the checks of a request and finds its token.
func (a *Agent) token(r *http.Request, rec *audit.Record) (cachedToken, *clientError) {
	if !authz.PeerAddr(r.RemoteAddr).IsLoopback() {
		return cachedToken{}, errNotLoopback
	}
	if cerr := a.checkHeader(r); cerr != nil {
		return cachedToken{}, cerr
	}
	req, cerr := parseRequest(r)
	if cerr != nil {
		return cachedToken{}, cerr
	}
	if problem := a.authority.credentialProblem(); problem != "" {
		a.cache.clear()
		return cachedToken{}, &clientError{http.StatusUnauthorized, "credential_refused", problem}
	}

	mi, cerr := a.resolve(r, req)
	if cerr != nil {
		return cachedToken{}, cerr
	}
	rec.ObjectName, rec.CallerClientID, rec.CallerObjectID = mi.Name, mi.ClientID, mi.PrincipalID
	return a.tokenFor(r, mi, req.resource)
}

// checkHeader compares X-IDENTITY-HEADER with the agent's, in constant
// time.
func (a *Agent) checkHeader(r *http.Request) *clientError {
	got := r.Header.Get(HeaderName)
	switch {
	case got == "":
		return errNoHeader
	case subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.Header)) != 1:
		return errWrongHeader
	}
	return nil
}

// parseRequest reads the query of a token request.
func parseRequest(r *http.Request) (request, *clientError) {
	q := r.URL.Query()
	if v := q.Get("api-version"); v != APIVersion {
		return request{}, &clientError{http.StatusBadRequest, "invalid_request",
			"api-version " + strconv.Quote(truncate(v, 20)) + " is not supported; send " + APIVersion + "."}
	}
	req := request{resource: q.Get("resource")}
	if req.resource == "" {
		return request{}, errNoResource
	}
	for _, p := range []struct{ param, kind string }{
		{"client_id", "client_id"}, {"object_id", "object_id"},
		{"principal_id", "object_id"}, {"mi_res_id", "mi_res_id"},
	} {
		v := q.Get(p.param)
		if v == "" {
			continue
		}
		if req.kind != "" {
			return request{}, errManySelectors
		}
		req.kind, req.value = p.kind, v
	}
	return req, nil
}

// resolve finds the identity a request names among the host's, as the
// authority last listed them, asking it again when that list is old. The
// authority checks again when it issues the token.
func (a *Agent) resolve(r *http.Request, req request) (identity.HostIdentityInfo, *clientError) {
	ids, fresh := a.authority.cachedIdentities()
	if !fresh {
		refreshed, err := a.authority.refreshHost(r.Context())
		switch {
		case err == nil:
			ids, fresh = refreshed, true
		case isRefusal(err):
			return identity.HostIdentityInfo{}, refusalError(err)
		default:
			a.log.Warn("identity authority not reachable; using the identities it last listed",
				"authority", a.cfg.Authority, "err", err)
		}
	}
	if mi, ok := choose(ids, req); ok {
		return mi, nil
	}
	if !fresh {
		return identity.HostIdentityInfo{}, errUnreachable
	}
	if req.kind == "" {
		return identity.HostIdentityInfo{}, &clientError{http.StatusBadRequest, "identity_not_assigned",
			"This host has " + strconv.Itoa(len(ids)) + " managed identities; choose one with client_id, object_id or mi_res_id."}
	}
	return identity.HostIdentityInfo{}, &clientError{http.StatusBadRequest, "identity_not_assigned",
		"No managed identity with " + req.kind + " " + strconv.Quote(truncate(req.value, 200)) + " is assigned to this host."}
}

// choose returns the identity req names in ids, or the only one.
func choose(ids []identity.HostIdentityInfo, req request) (identity.HostIdentityInfo, bool) {
	if req.kind == "" {
		if len(ids) == 1 {
			return ids[0], true
		}
		return identity.HostIdentityInfo{}, false
	}
	for _, mi := range ids {
		var v string
		switch req.kind {
		case "client_id":
			v = mi.ClientID
		case "object_id":
			v = mi.PrincipalID
		case "mi_res_id":
			v = mi.ResourceID
		}
		if strings.EqualFold(v, req.value) {
			return mi, true
		}
	}
	return identity.HostIdentityInfo{}, false
}

// tokenFor returns a token of mi for resource: the cached one while it is
// fresh, else a new one from the authority, else, while the authority
// cannot be reached, the cached one for as long as it is valid.
func (a *Agent) tokenFor(r *http.Request, mi identity.HostIdentityInfo, resource string) (cachedToken, *clientError) {
	now := a.now()
	if t, ok := a.cache.get(mi.ClientID, resource); ok && t.fresh(now) {
		return t, nil
	}

	// One request to the authority per identity and resource at a time;
	// the others wait and take what it brought.
	unlock := a.lockFetch(key(mi.ClientID, resource))
	defer unlock()
	if t, ok := a.cache.get(mi.ClientID, resource); ok && t.fresh(a.now()) {
		return t, nil
	}

	resp, err := a.authority.token(r.Context(), "client_id", mi.ClientID, resource)
	if err == nil {
		return a.store(mi, resource, resp), nil
	}
	if isRefusal(err) {
		var rf *refusal
		errors.As(err, &rf)
		if rf.credentialRefused() {
			a.cache.clear()
		} else {
			// Unassigned since the list was read, most likely.
			a.cache.forget(mi.ClientID)
			a.authority.forgetIdentities()
		}
		return cachedToken{}, refusalError(err)
	}
	if t, ok := a.cache.get(mi.ClientID, resource); ok && t.usable(a.now()) {
		a.log.Warn("identity authority not reachable; serving a cached token",
			"identity", mi.Name, "expires", t.expires, "err", err)
		return t, nil
	}
	a.log.Warn("identity authority not reachable and no valid token cached", "identity", mi.Name, "err", err)
	return cachedToken{}, errUnreachable
}

// store caches the token the authority issued.
func (a *Agent) store(mi identity.HostIdentityInfo, resource string, resp identity.ManagedTokenResponse) cachedToken {
	exp, _ := strconv.ParseInt(resp.ExpiresOn, 10, 64)
	t := cachedToken{
		token: resp.AccessToken, issued: a.now(), expires: time.Unix(exp, 0),
		resource: resource, clientID: mi.ClientID, name: mi.Name,
	}
	a.cache.put(t)
	a.log.Debug("obtained token", "identity", mi.Name, "expires", t.expires)
	return t
}

// lockFetch serializes authority requests for one cache key.
func (a *Agent) lockFetch(k cacheKey) func() {
	a.fetchMu.Lock()
	if a.fetching == nil {
		a.fetching = make(map[cacheKey]*sync.Mutex)
	}
	m, ok := a.fetching[k]
	if !ok {
		m = new(sync.Mutex)
		a.fetching[k] = m
	}
	a.fetchMu.Unlock()
	m.Lock()
	return m.Unlock
}

// isRefusal reports whether err is the authority saying no.
func isRefusal(err error) bool {
	var rf *refusal
	return errors.As(err, &rf)
}

// refusalError passes an authority's refusal on to the client.
func refusalError(err error) *clientError {
	var rf *refusal
	errors.As(err, &rf)
	if rf.credentialRefused() {
		return &clientError{http.StatusUnauthorized, "credential_refused",
			"The identity authority refused this host's enrolment credential: " + rf.description}
	}
	return &clientError{http.StatusBadRequest, rf.code, rf.description}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
