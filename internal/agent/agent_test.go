package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/identity"
	"github.com/keygate/keygate/internal/seal"
	"github.com/keygate/keygate/internal/store/bolt"
	"github.com/keygate/keygate/internal/testkit"
)

// clock is a settable clock shared by a test's authority and agent.
type clock = testkit.Clock

// buffer collects log output; it is safe for concurrent use.
type buffer = testkit.Buffer

// records collects audit records; it is safe for concurrent use.
type records struct {
	mu   sync.Mutex
	list []audit.Record
}

func (r *records) Log(rec audit.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec)
}

// lastOfAgent returns the newest record the agent wrote. The authority
// audits into the same records, and the agent's own calls to it may come
// in between.
func (r *records) lastOfAgent() audit.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.list) - 1; i >= 0; i-- {
		if r.list[i].Source == audit.SourceAgent {
			return r.list[i]
		}
	}
	return audit.Record{}
}

func (r *records) all() []audit.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

// env is an identity authority on a bolt store behind a TLS server on
// loopback, and the agents a test starts against it.
type env struct {
	t        *testing.T
	clock    *clock
	auth     *identity.Authority
	srv      *httptest.Server
	resource string // unique per test: MSAL caches tokens per process
	logs     *buffer
	audit    *records
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "id.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	e := &env{t: t, clock: testkit.NewClock(time.Now()), logs: &buffer{}, audit: &records{},
		resource: "https://vault-" + hex.EncodeToString(b[:]) + ".keygate.test"}

	mux := http.NewServeMux()
	e.srv = httptest.NewTLSServer(mux)
	t.Cleanup(e.srv.Close)
	e.auth = identity.New(identity.Config{
		Store: st, Sealer: sealer, URL: e.srv.URL, Audiences: []string{e.resource},
		Now: e.clock.Now, Logger: e.logger(), Audit: e.audit,
	})
	if err := e.auth.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	mux.Handle("/"+e.auth.TenantID()+"/", e.auth.Handler())
	return e
}

func (e *env) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// identity creates a managed identity and assigns it to host, returning
// it and the credential of the host if the host is new.
func (e *env) identity(name, host string, lifetime time.Duration) (identity.ManagedIdentity, string) {
	e.t.Helper()
	mi, err := e.auth.CreateManagedIdentity(e.t.Context(), name, identity.ManagedIdentityOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	_, cred, err := e.auth.AssignIdentity(e.t.Context(), name, host, lifetime)
	if err != nil {
		e.t.Fatal(err)
	}
	return mi, cred
}

// startAgent starts an agent for host on a free loopback port and stops
// it when the test ends.
func (e *env) startAgent(host string, edit func(*Config)) *Agent {
	e.t.Helper()
	cfg := Config{
		Authority: e.srv.URL + "/" + e.auth.TenantID(), Host: host,
		HTTPClient: e.srv.Client(), Listen: "127.0.0.1:0",
		Now: e.clock.Now, Logger: e.logger(), Audit: e.audit,
	}
	edit(&cfg)
	a, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := a.Open(ctx); err != nil {
		cancel()
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("agent: %v", err)
		}
	})
	return a
}

// get sends a token request to the agent with the given query and header.
func get(t *testing.T, a *Agent, query url.Values, header string) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.Endpoint()+"?"+query.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		req.Header.Set(HeaderName, header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("body %q is not a JSON object of strings: %v", b, err)
	}
	return resp.StatusCode, out
}

func (e *env) query(extra ...string) url.Values {
	q := url.Values{"api-version": {APIVersion}, "resource": {e.resource}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q
}

// verify checks a token with the authority's keys and returns its caller.
func (e *env) verify(token string) authz.Principal {
	e.t.Helper()
	p, err := authz.NewVerifier(authz.VerifierConfig{
		Issuer: e.auth.Issuer(), TenantID: e.auth.TenantID(), Audiences: []string{e.resource},
		Keys: e.auth, Now: e.clock.Now,
	}).Verify(token)
	if err != nil {
		e.t.Fatalf("token does not verify: %v", err)
	}
	return p
}

// TestSDKCredentials obtains tokens through the agent with the unmodified
// azidentity credentials, which find it through IDENTITY_ENDPOINT and
// IDENTITY_HEADER (read when a credential is made; hence t.Setenv, and no
// t.Parallel).
func TestSDKCredentials(t *testing.T) {
	e := newEnv(t)
	gw, cred := e.identity("gateway", "web-1", 0)
	a := e.startAgent("web-1", func(c *Config) { c.Credential = cred })
	for _, kv := range a.Environment() {
		name, value, _ := strings.Cut(kv, "=")
		t.Setenv(name, value)
	}

	for _, tc := range []struct {
		name string
		id   azidentity.ManagedIDKind
	}{
		{"the only identity", nil},
		{"client id", azidentity.ClientID(gw.ClientID)},
		{"object id", azidentity.ObjectID(gw.PrincipalID)},
		{"resource id", azidentity.ResourceID(gw.ResourceID)},
	} {
		c, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: tc.id})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := c.GetToken(ctxT(t), policy.TokenRequestOptions{Scopes: []string{e.resource + "/.default"}})
		if err != nil {
			t.Fatalf("%s: GetToken: %v", tc.name, err)
		}
		if p := e.verify(tok.Token); p.ObjectID != gw.PrincipalID || p.ClientID != gw.ClientID {
			t.Errorf("%s: token names %+v, want the identity", tc.name, p)
		}
		if d := time.Until(tok.ExpiresOn); d < 50*time.Minute || d > 61*time.Minute {
			t.Errorf("%s: token expires in %v, want about an hour", tc.name, d)
		}
	}

	// DefaultAzureCredential finds the agent the same way; AZURE_CLIENT_ID
	// chooses the identity, as it does on Azure.
	t.Setenv("AZURE_CLIENT_ID", gw.ClientID)
	dac, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := dac.GetToken(ctxT(t), policy.TokenRequestOptions{Scopes: []string{e.resource + "/.default"}})
	if err != nil {
		t.Fatalf("DefaultAzureCredential: %v", err)
	}
	if p := e.verify(tok.Token); p.ObjectID != gw.PrincipalID {
		t.Errorf("DefaultAzureCredential token names %+v", p)
	}
	if rec := e.audit.lastOfAgent(); rec.Source != audit.SourceAgent || rec.ObjectName != "gateway" || rec.Status != 200 ||
		rec.CallerHost != "web-1" || rec.CallerAddress != "127.0.0.1" {
		t.Errorf("agent audit record: %+v", rec)
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t)
	_, cred := e.identity("gateway", "web-1", 0)
	other, _ := e.identity("other", "web-2", 0)
	a := e.startAgent("web-1", func(c *Config) { c.Credential = cred })

	for _, tc := range []struct {
		name   string
		query  url.Values
		header string
		status int
		code   string
	}{
		{"no header", e.query(), "", 401, "unauthorized"},
		{"wrong header", e.query(), a.Header() + "x", 401, "unauthorized"},
		{"old api-version", url.Values{"api-version": {"2017-09-01"}, "resource": {e.resource}}, a.Header(), 400, "invalid_request"},
		{"no resource", url.Values{"api-version": {APIVersion}}, a.Header(), 400, "invalid_request"},
		{"two selectors", e.query("client_id", "a", "mi_res_id", "b"), a.Header(), 400, "invalid_request"},
		{"identity of another host", e.query("client_id", other.ClientID), a.Header(), 400, "identity_not_assigned"},
		{"resource not served", url.Values{"api-version": {APIVersion}, "resource": {"https://other.test"}}, a.Header(), 400, "invalid_resource"},
	} {
		status, body := get(t, a, tc.query, tc.header)
		if status != tc.status || body["error"] != tc.code || body["error_description"] == "" {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, body, tc.status, tc.code)
		}
		if body["access_token"] != "" {
			t.Errorf("%s: a token was served", tc.name)
		}
		if rec := e.audit.lastOfAgent(); rec.Source != audit.SourceAgent || rec.Status != tc.status || rec.Reason == "" {
			t.Errorf("%s: audit record %+v", tc.name, rec)
		}
	}

	// Nothing logged or audited holds the header or the credential.
	audited, _ := json.Marshal(e.audit.all())
	for _, s := range []string{a.Header(), cred} {
		if strings.Contains(e.logs.String(), s) || strings.Contains(string(audited), s) {
			t.Errorf("logs or audit hold secret material (%d characters)", len(s))
		}
	}
}

// TestAuditRequired refuses token requests while a required audit log
// cannot be written (the kernel's /dev/full refuses the writes), and
// serves them again once it can.
func TestAuditRequired(t *testing.T) {
	e := newEnv(t)
	_, cred := e.identity("gateway", "web-1", 0)
	disk := testkit.NewDiskFull(t)
	w := audit.NewWriter(disk, nil)
	w.Require()
	a := e.startAgent("web-1", func(c *Config) { c.Credential = cred; c.Audit = w })

	disk.SetFull(true)
	get(t, a, e.query(), a.Header()) // answered; its record fails
	status, body := get(t, a, e.query(), a.Header())
	if status != http.StatusServiceUnavailable || body["access_token"] != "" || !strings.Contains(body["error_description"], "audit log") {
		t.Errorf("with the audit log unwritable: %d %v, want 503 about the audit log and no token", status, body)
	}
	disk.SetFull(false)
	get(t, a, e.query(), a.Header()) // refused; its record is written
	if status, body := get(t, a, e.query(), a.Header()); status != http.StatusOK || body["access_token"] == "" {
		t.Errorf("with the audit log writable again: %d, want 200 and a token", status)
	}
}

// TestNonLoopbackPeer calls the agent's handler with a peer address that
// is not loopback. No such peer can reach a loopback listener in a test,
// so the request is handed to the handler directly, as net/http would.
func TestNonLoopbackPeer(t *testing.T) {
	e := newEnv(t)
	_, cred := e.identity("gateway", "web-1", 0)
	a := e.startAgent("web-1", func(c *Config) { c.Credential = cred })
	for _, peer := range []string{"192.0.2.10:5555", "[2001:db8::1]:5555", "10.0.0.1:80"} {
		req := httptest.NewRequest(http.MethodGet, EndpointPath+"?"+e.query().Encode(), nil)
		req.RemoteAddr = peer
		req.Header.Set(HeaderName, a.Header())
		w := httptest.NewRecorder()
		a.http.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), "access_token") {
			t.Errorf("peer %s: %d %s, want 403", peer, w.Code, w.Body)
		}
	}
}

func TestListenMustBeLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8442", "[::]:8442", "192.0.2.1:8442", ":8442", "example.com:1"} {
		_, err := New(Config{Authority: "https://127.0.0.1:1/tenant", Host: "h", Credential: "c", Listen: addr})
		if err == nil || !strings.Contains(err.Error(), "Listen") {
			t.Errorf("New with Listen %q: %v, want an error naming Listen", addr, err)
		}
	}
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Host: "h", Credential: "c", Listen: "127.0.0.1:0"}, "Authority"},
		{Config{Authority: "http://127.0.0.1:1/t", Host: "h", Credential: "c", Listen: "127.0.0.1:0"}, "Authority"},
		{Config{Authority: "https://127.0.0.1:1", Host: "h", Credential: "c", Listen: "127.0.0.1:0"}, "Authority"},
		{Config{Authority: "https://127.0.0.1:1/t", Credential: "c", Listen: "127.0.0.1:0"}, "Host"},
		{Config{Authority: "https://127.0.0.1:1/t", Host: "h", Listen: "127.0.0.1:0"}, "Credential"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
}

// TestAuthorityUnreachable stops the authority and checks that the agent
// serves the token it holds for as long as the token is valid, and no
// longer.
func TestAuthorityUnreachable(t *testing.T) {
	e := newEnv(t)
	_, cred := e.identity("gateway", "web-1", 0)
	a := e.startAgent("web-1", func(c *Config) { c.Credential = cred })
	status, first := get(t, a, e.query(), a.Header())
	if status != http.StatusOK {
		t.Fatalf("first token: %d %v", status, first)
	}

	e.srv.Close()
	e.clock.Advance(40 * time.Minute) // past half-life: the agent would refresh
	status, body := get(t, a, e.query(), a.Header())
	if status != http.StatusOK || body["access_token"] != first["access_token"] || body["expires_on"] != first["expires_on"] {
		t.Fatalf("with the authority down: %d, same token %v", status, body["access_token"] == first["access_token"])
	}
	if !strings.Contains(e.logs.String(), "serving a cached token") {
		t.Error("serving from the cache was not logged")
	}

	e.clock.Advance(20 * time.Minute) // past expiry
	status, body = get(t, a, e.query(), a.Header())
	if status != http.StatusServiceUnavailable || body["access_token"] != "" {
		t.Errorf("expired token with the authority down: %d %v, want 503", status, body)
	}
}

// TestExpiredCredential lets the host's credential expire: the authority
// refuses it, and the agent refuses clients from then on, cached tokens
// included.
func TestExpiredCredential(t *testing.T) {
	e := newEnv(t)
	_, cred := e.identity("gateway", "web-1", 2*time.Minute)
	credFile := filepath.Join(t.TempDir(), "credential")
	if err := os.WriteFile(credFile, []byte(cred+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := e.startAgent("web-1", func(c *Config) { c.CredentialFile = credFile })
	if status, body := get(t, a, e.query(), a.Header()); status != http.StatusOK {
		t.Fatalf("before expiry: %d %v", status, body)
	}

	e.clock.Advance(3 * time.Minute)
	status, body := get(t, a, e.query(), a.Header())
	if status != http.StatusUnauthorized || body["error"] != "credential_refused" || !strings.Contains(body["error_description"], "expired") {
		t.Fatalf("after expiry: %d %v, want 401 naming the expiry", status, body)
	}
	// The authority must refuse it too, whatever an agent does.
	form := url.Values{"resource": {e.resource}}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/"+e.auth.TenantID()+"/managedidentity/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web-1", cred)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("authority with an expired credential: %d", resp.StatusCode)
	}

	// A rotated credential written to the file is picked up.
	_, fresh, err := e.auth.RotateHostCredential(t.Context(), "web-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(credFile, []byte(fresh), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, body := get(t, a, e.query(), a.Header()); status != http.StatusOK {
		t.Errorf("after rotation: %d %v", status, body)
	}
}

// TestCredentialRotatedUnderTheAgent rotates a working credential and
// writes the new one to the agent's file: the old one is refused at once,
// and the agent's next request, finding it refused, goes again with the
// file's new one, so no client sees the refusal.
func TestCredentialRotatedUnderTheAgent(t *testing.T) {
	e := newEnv(t)
	gw, cred := e.identity("gateway", "web-1", 0)
	credFile := filepath.Join(t.TempDir(), "credential")
	if err := os.WriteFile(credFile, []byte(cred+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := e.startAgent("web-1", func(c *Config) { c.CredentialFile = credFile })
	if status, body := get(t, a, e.query("client_id", gw.ClientID), a.Header()); status != http.StatusOK {
		t.Fatalf("before rotation: %d %v", status, body)
	}

	_, fresh, err := e.auth.RotateHostCredential(t.Context(), "web-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(credFile, []byte(fresh+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Past the cached token's half-life: the agent asks the authority.
	e.clock.Advance(31 * time.Minute)
	if status, body := get(t, a, e.query("client_id", gw.ClientID), a.Header()); status != http.StatusOK || body["access_token"] == "" {
		t.Errorf("first request after the rotation: %d %v, want a token", status, body)
	}
}

// TestUnassignedIdentityStopsGettingTokens unassigns the identity while
// the agent holds its token: the agent refreshes, hears no, and stops.
func TestUnassignedIdentityStopsGettingTokens(t *testing.T) {
	e := newEnv(t)
	gw, cred := e.identity("gateway", "web-1", 0)
	a := e.startAgent("web-1", func(c *Config) { c.Credential = cred })
	if status, body := get(t, a, e.query("client_id", gw.ClientID), a.Header()); status != http.StatusOK {
		t.Fatalf("%d %v", status, body)
	}
	if _, err := e.auth.UnassignIdentity(t.Context(), "gateway", "web-1"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(31 * time.Minute)
	status, body := get(t, a, e.query("client_id", gw.ClientID), a.Header())
	if status != http.StatusBadRequest || body["error"] != "identity_not_assigned" {
		t.Errorf("after unassignment: %d %v", status, body)
	}
}

func TestEnvFile(t *testing.T) {
	e := newEnv(t)
	_, cred := e.identity("gateway", "web-1", 0)
	path := filepath.Join(t.TempDir(), "identity.env")
	a := e.startAgent("web-1", func(c *Config) { c.Credential = cred })
	if err := a.WriteEnvFile(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("env file mode: %v, %v", fi.Mode(), err)
	}
	h, err := ReadHeaderFromEnvFile(path)
	if err != nil || h != a.Header() {
		t.Errorf("ReadHeaderFromEnvFile = %q, %v; want the agent's header", h, err)
	}
	if h, err := ReadHeaderFromEnvFile(filepath.Join(t.TempDir(), "missing")); h != "" || err != nil {
		t.Errorf("missing file: %q, %v", h, err)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// FuzzParseRequest feeds arbitrary query strings to the request parser:
// no panic, and an accepted request names a resource and at most one
// identity.
func FuzzParseRequest(f *testing.F) {
	for _, q := range []string{
		"api-version=2019-08-01&resource=https://v.test",
		"api-version=2019-08-01&resource=r&client_id=a&object_id=b",
		"api%2Dversion=2019-08-01&resource=r&principal_id=x",
		"resource=%zz", "",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		r := httptest.NewRequest(http.MethodGet, "/msi/token", nil)
		r.URL.RawQuery = q
		req, cerr := parseRequest(r)
		if cerr != nil {
			if cerr.status != http.StatusBadRequest || cerr.message == "" {
				t.Fatalf("refusal %+v", cerr)
			}
			return
		}
		if req.resource == "" || (req.kind == "") != (req.value == "") {
			t.Fatalf("accepted %q as %+v", q, req)
		}
	})
}
