package identity

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/store"
)

// maxFormBytes bounds a token request's body. MSAL's requests are under
// 1 KiB; client assertions and claims challenges stay far below this.
const maxFormBytes = 64 << 10

// maxClientIDLen bounds the client ids the token endpoint looks up. Ours
// are GUIDs, 36 characters.
const maxClientIDLen = 128

// Handler serves the authority's endpoints under "/{tenantID}/", the
// paths as clients send them (the server mounts it at "/"+TenantID()+"/"
// without stripping the prefix):
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration
//	GET  /{tenant}/discovery/v2.0/keys   (JWKS)
//	POST /{tenant}/oauth2/v2.0/token     (client credentials)
//	GET  /{tenant}/managedidentity/host  (host agents; see host_handler.go)
//	POST /{tenant}/managedidentity/token
//
// Handler panics when called before Init: the tenant is not known yet.
func (a *Authority) Handler() http.Handler {
	st, err := a.current()
	if err != nil {
		panic("identity: Handler called before Init")
	}
	base := "/" + st.tenantID
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+base+"/v2.0/.well-known/openid-configuration", a.serveDiscovery)
	mux.HandleFunc("GET "+base+"/discovery/v2.0/keys", a.serveJWKS)
	mux.HandleFunc("POST "+base+"/oauth2/v2.0/token", a.audited(opClientCredential, a.serveToken))
	mux.HandleFunc("GET "+base+"/managedidentity/host", a.audited(opHostGet, a.serveHost))
	mux.HandleFunc("POST "+base+"/managedidentity/token", a.audited(opManagedToken, a.serveManagedToken))
	return mux
}

// discoveryDocument is the OpenID Provider metadata. MSAL requires
// issuer, authorization_endpoint and token_endpoint, and checks that the
// issuer has the authority's scheme and host; @azure/identity also reads
// jwks_uri.
type discoveryDocument struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	GrantTypes            []string `json:"grant_types_supported"`
	TokenEndpointAuth     []string `json:"token_endpoint_auth_methods_supported"`
	SigningAlgorithms     []string `json:"id_token_signing_alg_values_supported"`
	SubjectTypes          []string `json:"subject_types_supported"`
}

func (a *Authority) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	st := a.state.Load()
	base := a.cfg.URL + "/" + st.tenantID
	writeJSON(w, http.StatusOK, discoveryDocument{
		Issuer: st.issuer,
		// Not served: there are no users to sign in. MSAL only checks that
		// the field is present.
		AuthorizationEndpoint: base + "/oauth2/v2.0/authorize",
		TokenEndpoint:         base + "/oauth2/v2.0/token",
		JWKSURI:               base + "/discovery/v2.0/keys",
		GrantTypes:            []string{"client_credentials"},
		TokenEndpointAuth:     []string{"client_secret_post", "private_key_jwt"},
		SigningAlgorithms:     []string{"ES256"},
		SubjectTypes:          []string{"pairwise"},
	})
}

// jwks is a JSON Web Key Set (RFC 7517).
type jwks struct {
	Keys []jwk `json:"keys"`
}

func (a *Authority) serveJWKS(w http.ResponseWriter, r *http.Request) {
	st := a.state.Load()
	doc := jwks{Keys: make([]jwk, 0, len(st.keys))}
	for _, k := range st.keys {
		j, err := k.publicJWK()
		if err != nil {
			a.log.Error("encoding signing key", "kid", k.kid, "error", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		doc.Keys = append(doc.Keys, j)
	}
	writeJSON(w, http.StatusOK, doc)
}

// tokenResponse is a successful token response (RFC 6749 section 5.1),
// with Entra's ext_expires_in.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
}

// serveToken is the token endpoint: client credentials with a client
// secret in the form body (client_secret_post, as MSAL sends it) or a
// client assertion signed with a registered certificate
// (private_key_jwt).
func (a *Authority) serveToken(w http.ResponseWriter, r *http.Request, rec *audit.Record) {
	req, oerr := parseTokenRequest(w, r)
	rec.CallerClientID = req.clientID
	if oerr != nil {
		a.refuse(w, r, rec, oerr)
		return
	}

	// Authenticate before looking at the scope, so that only a client
	// that proved itself learns which resources exist.
	sp, oerr := a.authenticateRequest(r, req)
	if oerr != nil {
		a.refuse(w, r, rec, oerr)
		return
	}
	rec.CallerObjectID = sp.ObjectID
	aud, oerr := a.scopeAudience(req.scope)
	if oerr != nil {
		a.refuse(w, r, rec, oerr)
		return
	}

	token, expires, err := a.IssueToken(sp, aud)
	if err != nil {
		a.log.Error("issuing token", "client_id", sp.ClientID, "audience", aud, "error", err)
		a.refuse(w, r, rec, errServer)
		return
	}
	// Tokens must not be cached by anything between (RFC 6749 5.1).
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	lifetime := int64(expires.Sub(a.cfg.Now()) / time.Second)
	writeJSON(w, http.StatusOK, tokenResponse{
		TokenType: "Bearer", ExpiresIn: lifetime, ExtExpiresIn: lifetime,
		AccessToken: token,
	})
}

// authenticateRequest checks the client's secret or assertion.
func (a *Authority) authenticateRequest(r *http.Request, req tokenRequest) (ServicePrincipal, *oauthError) {
	if req.assertion != "" {
		return a.authenticateAssertion(r.Context(), req.clientID, req.assertion, a.tokenEndpoint())
	}
	sp, err := a.authenticate(r.Context(), req.clientID, req.secret)
	if err != nil {
		if !errors.Is(err, errUnknownClient) && !errors.Is(err, errWrongSecret) {
			a.log.Error("authenticating client", "client_id", req.clientID, "error", err)
		}
		return sp, authError(req.clientID, err)
	}
	return sp, nil
}

// tokenEndpoint is the URL of the token endpoint, as discovery gives it
// and client assertions must name it (aud).
func (a *Authority) tokenEndpoint() string {
	return a.cfg.URL + "/" + a.state.Load().tenantID + "/oauth2/v2.0/token"
}

// tokenRequest holds the parameters of a token request that matter: a
// secret or an assertion, never both.
type tokenRequest struct {
	clientID  string
	secret    string
	assertion string
	scope     string
}

// parseTokenRequest reads and checks the form of a token request. The
// client id is filled in as soon as it is known, for the log.
func parseTokenRequest(w http.ResponseWriter, r *http.Request) (tokenRequest, *oauthError) {
	var req tokenRequest
	form, oerr := readForm(w, r)
	if oerr != nil {
		return req, oerr
	}
	req.clientID = form.Get("client_id")
	if len(req.clientID) > maxClientIDLen {
		// Not a client id of ours; keep it out of the log and the store.
		req.clientID = ""
		return req, invalidRequest("The parameter 'client_id' is too long.")
	}
	switch gt := form.Get("grant_type"); {
	case gt == "":
		return req, missingParameter("grant_type")
	case gt != "client_credentials":
		return req, errUnsupportedGrant
	case req.clientID == "":
		return req, missingParameter("client_id")
	case form.Has("client_assertion") || form.Has("client_assertion_type"):
		if oerr := readAssertion(form, &req); oerr != nil {
			return req, oerr
		}
	default:
		if req.secret = form.Get("client_secret"); req.secret == "" {
			return req, errNoClientSecret
		}
	}
	req.scope = form.Get("scope")
	if req.scope == "" {
		return req, missingParameter("scope")
	}
	return req, nil
}

// readAssertion reads a client assertion and its type into req.
func readAssertion(form formValues, req *tokenRequest) *oauthError {
	switch t := form.Get("client_assertion_type"); {
	case t == "":
		return missingParameter("client_assertion_type")
	case t != assertionType:
		return invalidRequest("The parameter 'client_assertion_type' must be " + assertionType + ".")
	case form.Has("client_secret"):
		return invalidRequest("Give client_secret or client_assertion, not both.")
	}
	if req.assertion = form.Get("client_assertion"); req.assertion == "" {
		return missingParameter("client_assertion")
	}
	return nil
}

// readForm parses the body of a token request, limited to maxFormBytes.
// Parameters in the URL are ignored: a secret does not belong there.
func readForm(w http.ResponseWriter, r *http.Request) (formValues, *oauthError) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, invalidRequest("The request body is larger than 64 KiB.")
		}
		return nil, invalidRequest("The request body is not a valid form.")
	}
	// RFC 6749 section 3.2: parameters must not be repeated.
	for name, values := range r.PostForm {
		if len(values) > 1 {
			return nil, invalidRequest("The parameter " + quoteParam(name) + " is repeated.")
		}
	}
	return formValues(r.PostForm), nil
}

// formValues is a parsed form whose parameters each appear at most once.
type formValues map[string][]string

// Get returns the value of name, or "".
func (f formValues) Get(name string) string {
	if v := f[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Has reports whether name is present, empty or not.
func (f formValues) Has(name string) bool {
	_, ok := f[name]
	return ok
}

// oidcScopes are the scopes MSAL appends to every request; they ask for
// ID and refresh tokens, which client credentials never yield, and are
// ignored as Entra ignores them.
var oidcScopes = []string{"openid", "offline_access", "profile", "email"}

// scopeAudience returns the audience a scope asks for: exactly one
// "RESOURCE/.default" naming a configured audience, besides OIDC scopes.
func (a *Authority) scopeAudience(scope string) (string, *oauthError) {
	var resource string
	n := 0
	for _, s := range strings.Fields(scope) {
		if slices.Contains(oidcScopes, s) {
			continue
		}
		r, ok := strings.CutSuffix(s, "/.default")
		if !ok {
			return "", errInvalidScope
		}
		resource = r
		n++
	}
	if n != 1 {
		return "", errInvalidScope
	}
	aud, ok := a.audience(resource)
	if !ok {
		return "", errInvalidScope
	}
	return aud, nil
}

// authError maps an error of authenticate to the OAuth2 error for it.
func authError(clientID string, err error) *oauthError {
	switch {
	case errors.Is(err, errUnknownClient):
		return unknownClient(clientID)
	case errors.Is(err, errWrongSecret):
		return errBadSecret
	case errors.Is(err, store.ErrUnavailable):
		return errUnavailable
	}
	return errServer
}

// writeJSON writes v as the JSON body of a response with status.
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
