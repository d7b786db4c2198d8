// Package httpapi serves keygate's vault over the Azure Key Vault REST API:
// paths, JSON shapes, error bodies, status codes and the bearer challenge
// exactly as the Azure SDKs expect them. It translates between the wire and
// package vault, and checks every request before it reaches the domain:
// the vault's network rules, then the token, then the access policy. Every
// request, whatever its outcome, leaves one audit record.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/vault"
)

// APIVersions are the api-version values accepted, as the current and
// recent Azure SDKs send them.
var APIVersions = []string{"7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"}

// Verifier checks bearer tokens. *authz.Verifier implements it.
type Verifier interface {
	Verify(token string) (authz.Principal, error)
}

// Config holds a Handler's dependencies. Vaults, Verifier, Authority and
// Resource are required.
type Config struct {
	Vaults   *vault.Service
	Verifier Verifier

	// Authority is named in the bearer challenge: the authority host with
	// the tenant as its path, e.g. https://127.0.0.1:8443/TENANT-ID. The
	// SDK takes the tenant from its path.
	Authority string

	// Resource is named in the bearer challenge; clients ask for tokens
	// with scope Resource+"/.default". With challenge verification on, the
	// Go SDK requires the vault's host to be a subdomain of its host.
	Resource string

	// VaultForHost maps a request's Host to a vault name. nil serves the
	// default vault at every host.
	VaultForHost func(host string) string

	// Logger receives one debug line per request and info lines for
	// denials. nil discards them.
	Logger *slog.Logger

	// Audit receives one record per request. nil discards them.
	Audit audit.Logger

	// Now is the clock of audit records; nil means time.Now.
	Now func() time.Time

	// MaxStreams bounds the event streams open at once on this server;
	// MaxCallerStreams those of one caller (object id) from one address.
	// Zero means DefaultMaxStreams and DefaultMaxCallerStreams.
	MaxStreams       int
	MaxCallerStreams int
}

// Stream limits. A stream holds a goroutine and a connection for as long
// as its token lives; a gateway instance opens one per vault it follows,
// and a fleet shares one identity, hence the per-address count.
const (
	DefaultMaxStreams       = 10000
	DefaultMaxCallerStreams = 32
)

// Body limits. A secret value is at most 25 KB, which JSON escaping can
// grow several times over; a restore carries every version of a secret.
const (
	maxBodyBytes    = 1 << 20
	maxRestoreBytes = 32 << 20
)

// Handler serves the Key Vault data plane. It is safe for concurrent use.
type Handler struct {
	vaults    *vault.Service
	verifier  Verifier
	challenge string
	vaultFor  func(host string) string
	log       *slog.Logger
	audit     audit.Logger
	now       func() time.Time
	mux       *http.ServeMux

	// streamsDone is closed by EndStreams; endStreams closes it once.
	streamsDone chan struct{}
	endStreams  func()

	streams streamCounts
}

// New returns a Handler. It does no I/O.
func New(cfg Config) *Handler {
	h := &Handler{
		vaults:    cfg.Vaults,
		verifier:  cfg.Verifier,
		challenge: `Bearer authorization="` + cfg.Authority + `", resource="` + cfg.Resource + `"`,
		vaultFor:  cfg.VaultForHost,
		log:       cfg.Logger,
		audit:     cfg.Audit,
		now:       cfg.Now,
		mux:       http.NewServeMux(),

		streamsDone: make(chan struct{}),
		streams:     newStreamCounts(cfg.MaxStreams, cfg.MaxCallerStreams),
	}
	h.endStreams = sync.OnceFunc(func() { close(h.streamsDone) })
	if h.vaultFor == nil {
		h.vaultFor = func(string) string { return vault.DefaultVault }
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
	h.routes()
	h.certificateRoutes()
	h.keyRoutes()
	h.eventRoutes()
	return h
}

// ServeHTTP serves one request and audits it, whatever comes of it. The
// route's handler (op) applies the checks and records its outcome in the
// call this puts in the request's context; a request no route matches is
// audited as operation "Unknown".
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := &call{requestID: newRequestID(), vault: h.vaultFor(r.Host), addr: authz.PeerAddr(r.RemoteAddr)}
	w.Header().Set("x-ms-request-id", c.requestID)
	rw := audit.NewRecorder(w)
	r = r.WithContext(context.WithValue(r.Context(), callKey{}, c))

	// The mux sets r's pattern and path values, which the audit record
	// reads its operation and object from.
	defer h.auditRequest(r, c, rw, start)
	if audit.Refusing(h.audit) {
		// Named by the route it would have taken, for the record.
		_, r.Pattern = h.mux.Handler(r)
		c.reason = audit.RefusalMessage
		writeError(rw, &apiError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: audit.RefusalMessage + "; retry later."})
		return
	}
	h.mux.ServeHTTP(rw, r)
}

// Register adds the data-plane routes to mux, for a server that serves
// other things (the identity authority, management) beside them.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("/secrets", h)
	mux.Handle("/secrets/", h)
	mux.Handle("/deletedsecrets", h)
	mux.Handle("/deletedsecrets/", h)
	mux.Handle("/certificates", h)
	mux.Handle("/certificates/", h)
	mux.Handle("/deletedcertificates", h)
	mux.Handle("/deletedcertificates/", h)
	mux.Handle("/keys/", h)
	mux.Handle(eventsPath, h)
}

// call is what the checks before an operation established about a request.
type call struct {
	principal  authz.Principal
	vault      string
	apiVersion string
	requestID  string

	// addr is the peer's address, which network rules judge.
	addr netip.Addr

	// props are the vault's properties, read before authentication for
	// its network rules.
	props *vault.Vault

	// serviceOnly is set when the network rules deny addr but let
	// keygate's own services bypass them: only a caller with
	// authz.RoleService may proceed.
	serviceOnly bool

	// reason says why the request was refused or failed, for the audit
	// record; it holds only messages safe to show the client.
	reason string
}

// callKey is the context key of a request's *call.
type callKey struct{}

// callOf returns the call ServeHTTP started for r, or a new one for a
// request that reached an operation some other way (which then goes
// unaudited).
func (h *Handler) callOf(r *http.Request) *call {
	if c, ok := r.Context().Value(callKey{}).(*call); ok {
		return c
	}
	return &call{requestID: newRequestID(), vault: h.vaultFor(r.Host), addr: authz.PeerAddr(r.RemoteAddr)}
}

// opFunc is an operation's handler, run once the request has passed every
// check. It returns the error to send, if any.
type opFunc func(w http.ResponseWriter, r *http.Request, c *call) error

// op wraps an operation that needs permission perm on objects of kind
// (authz.KindSecrets, ...) with the checks every request goes through, in
// the order Key Vault applies them: the vault's network rules, then the
// bearer token, both before anything of the request is read, then
// api-version, then the access policy.
func (h *Handler) op(kind, perm string, notFound string, fn opFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := h.callOf(r)
		if !h.admit(w, r, c) {
			return
		}
		if !h.authenticate(w, r, c) {
			return
		}
		err := h.check(r, c, kind, perm)
		if err == nil {
			err = fn(w, r, c)
		}
		if err != nil {
			h.fail(w, r, c, err, notFound)
			return
		}
		h.log.Debug("request", "method", r.Method, "path", r.URL.Path, "vault", c.vault,
			"object_id", c.principal.ObjectID, "request_id", c.requestID)
	}
}

// authenticate answers 401 with the bearer challenge unless the request
// carries a valid token.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, c *call) bool {
	token, ok := bearerToken(r)
	if !ok {
		h.unauthorized(w, c, "Bearer token is missing: request a token with the scope named by this challenge.")
		return false
	}
	p, err := h.verifier.Verify(token)
	if err != nil {
		h.log.Info("token refused", "method", r.Method, "path", r.URL.Path, "remote_addr", r.RemoteAddr,
			"reason", err.Error(), "request_id", c.requestID)
		h.unauthorized(w, c, "AKV10000: Request is missing a valid bearer token: "+err.Error())
		return false
	}
	c.principal = p

	// A caller the network rules let in only as one of keygate's own
	// services is known now.
	if c.serviceOnly && !p.HasRole(authz.RoleService) {
		h.firewallDenied(w, r, c)
		return false
	}
	return true
}

func (h *Handler) unauthorized(w http.ResponseWriter, c *call, msg string) {
	c.reason = msg
	w.Header().Set("WWW-Authenticate", h.challenge)
	writeError(w, &apiError{Status: http.StatusUnauthorized, Code: "Unauthorized", Message: msg})
}

func bearerToken(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// check validates api-version, finds the vault and applies its access
// policy. An operation with no kind checks its grants itself.
func (h *Handler) check(r *http.Request, c *call, kind, perm string) error {
	c.apiVersion = apiVersion(r)
	if !slices.Contains(APIVersions, c.apiVersion) {
		if c.apiVersion == "" {
			return badRequest("api-version: missing; supported versions are %s", strings.Join(APIVersions, ", "))
		}
		return badRequest("api-version: %q is not supported; supported versions are %s",
			truncate(c.apiVersion, 20), strings.Join(APIVersions, ", "))
	}
	v := c.props
	if v == nil {
		var err error
		if v, err = h.vaults.Vault(r.Context(), c.vault); err != nil {
			return err
		}
	}
	if kind != "" && !authz.Allows(v.AccessPolicies, c.principal, kind, perm) {
		return &apiError{
			Status: http.StatusForbidden, Code: "Forbidden", Inner: "AccessDenied",
			Message: sprintf("The user, group or application 'appid=%s;oid=%s' does not have %s %s permission on key vault '%s'.",
				c.principal.ClientID, c.principal.ObjectID, kind, perm, c.vault),
		}
	}
	return nil
}

// apiVersion reads the api-version query parameter. The JavaScript SDK
// percent-encodes the key (api%2Dversion), which url.Query decodes.
func apiVersion(r *http.Request) string {
	return r.URL.Query().Get("api-version")
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, c *call, err error, notFound string) {
	ae := toAPIError(err, notFound)
	c.reason = ae.Message
	attrs := []any{"method", r.Method, "path", r.URL.Path, "vault", c.vault,
		"object_id", c.principal.ObjectID, "status", ae.Status, "request_id", c.requestID}
	switch {
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client hung up mid-request: nothing failed on our side.
		h.log.Debug("request abandoned by client", attrs...)
	case ae.Status >= 500:
		h.log.Error("request failed", append(attrs, "err", err)...)
	case ae.Status == http.StatusForbidden:
		h.log.Info("request denied", append(attrs, "code", ae.Code, "inner_code", ae.Inner)...)
	default:
		h.log.Debug("request rejected", append(attrs, "code", ae.Code)...)
	}
	writeError(w, ae)
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// ctx is a short name for the request's context in handlers.
func ctx(r *http.Request) context.Context { return r.Context() }
