// Package agent is keygate's managed-identity agent: it runs on a host
// that managed identities are assigned to, and serves Azure App Service's
// managed-identity protocol on loopback, so that azidentity's
// ManagedIdentityCredential and DefaultAzureCredential (and the other
// Azure SDKs) obtain tokens for those identities unchanged, with no secret
// in the application's configuration.
//
// Clients find the agent through two environment variables:
//
//	IDENTITY_ENDPOINT=http://127.0.0.1:PORT/msi/token
//	IDENTITY_HEADER=<a random value the agent checks on every request>
//
// and send GET IDENTITY_ENDPOINT?api-version=2019-08-01&resource=R, with
// at most one of client_id, object_id (or principal_id) and mi_res_id to
// choose an identity, and the header X-IDENTITY-HEADER.
//
// The agent holds the host's enrolment credential and exchanges it at
// keygate's identity authority for tokens of the identities assigned to
// the host; the authority decides which those are. Tokens are cached, and
// served from the cache while the authority cannot be reached, for as
// long as they are valid.
package agent

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/audit"
)

// APIVersion is the App Service protocol version served.
const APIVersion = "2019-08-01"

// EndpointPath is the path of the token endpoint.
const EndpointPath = "/msi/token"

// Config configures an Agent. Authority, Host and one of Credential and
// CredentialFile are required.
type Config struct {
	// Authority is the identity authority with its tenant as path, as
	// `keygate identity assign` prints it:
	// https://kv.example.internal:8443/TENANT-ID.
	Authority string

	// Host is this host's name, as identities were assigned to it.
	Host string

	// Credential is the host's enrolment credential. CredentialFile names
	// a file holding it instead (a line of text); the agent reads it again
	// when the authority refuses the credential, so that a rotated
	// credential written there is picked up without a restart.
	Credential     string
	CredentialFile string

	// HTTPClient talks to the authority; it must trust the authority's
	// TLS certificate. nil means a client with the system roots.
	HTTPClient *http.Client

	// Listen is the loopback address to serve on, such as 127.0.0.1:8442.
	// Port 0 picks a free port. Addresses that are not loopback are
	// refused: the protocol is plain HTTP, for local processes only.
	Listen string

	// Header is the value clients must send as X-IDENTITY-HEADER. Empty
	// means a random one, which Environment reports.
	Header string

	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// Logger receives lifecycle (info), refusals (info) and failures to
	// reach the authority (warn). nil discards.
	Logger *slog.Logger

	// Audit receives one record per token request. nil discards.
	Audit audit.Logger
}

// Agent serves managed-identity tokens to local processes. Open, then
// Serve; Run does both. It is safe for concurrent use.
type Agent struct {
	cfg       Config
	log       *slog.Logger
	audit     audit.Logger
	now       func() time.Time
	authority *authorityClient
	cache     *tokenCache

	listener net.Listener
	http     *http.Server
	endpoint string

	// fetchMu guards fetching, the locks that let one request per cache
	// key at a time go to the authority.
	fetchMu  sync.Mutex
	fetching map[cacheKey]*sync.Mutex

	closeOnce sync.Once
}

// New checks cfg and returns an Agent. It does no I/O.
func New(cfg Config) (*Agent, error) {
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, audit: cfg.Audit, now: cfg.Now}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.audit == nil {
		a.audit = audit.Discard
	}
	if a.now == nil {
		a.now = time.Now
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	a.authority = &authorityClient{base: strings.TrimSuffix(cfg.Authority, "/"), host: cfg.Host, hc: hc,
		credential: cfg.Credential, credentialFile: cfg.CredentialFile, now: a.now}
	a.cache = newTokenCache()
	return a, nil
}

// checkConfig reports the first field of cfg that is missing or wrong, and
// fills in a random header when none is given.
func checkConfig(cfg *Config) error {
	u, err := url.Parse(cfg.Authority)
	switch {
	case cfg.Authority == "":
		return errors.New("agent config: Authority is required")
	case err != nil || u.Scheme != "https" || u.Host == "" || strings.Trim(u.Path, "/") == "":
		return fmt.Errorf("agent config: Authority %q must be an https URL with the tenant as path", cfg.Authority)
	case cfg.Host == "":
		return errors.New("agent config: Host is required")
	case (cfg.Credential == "") == (cfg.CredentialFile == ""):
		return errors.New("agent config: give one of Credential and CredentialFile")
	}
	if err := checkLoopback(cfg.Listen); err != nil {
		return fmt.Errorf("agent config: Listen: %w", err)
	}
	if cfg.Header == "" {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("generating identity header: %w", err)
		}
		cfg.Header = base64.RawURLEncoding.EncodeToString(b[:])
	}
	return nil
}

// checkLoopback checks that addr is a loopback IP address and port.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", addr)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address: the agent serves local processes only", addr)
	}
	return nil
}

// Open reads the credential file and listens. It does not call the
// authority, which may be served by the same process and not serving yet;
// Serve does. On error nothing stays open.
func (a *Agent) Open(context.Context) error {
	if err := a.authority.loadCredential(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", a.cfg.Listen, err)
	}
	a.listener = ln
	a.endpoint = "http://" + ln.Addr().String() + EndpointPath

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+EndpointPath, a.serveToken)
	mux.HandleFunc("GET "+EndpointPath+"/", a.serveToken)
	a.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	return nil
}

// Serve serves until ctx is done, then shuts down within ten seconds. It
// asks the authority at once which identities the host has, and serves
// even when the authority cannot be reached: it asks again when a client
// needs a token.
func (a *Agent) Serve(ctx context.Context) error {
	defer a.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 1)
	go func() { errc <- a.http.Serve(a.listener) }()
	a.log.Info("identity agent listening", "endpoint", a.endpoint, "host", a.cfg.Host)
	wg.Go(func() { a.hello(ctx) })

	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.http.Shutdown(shutdownCtx)
	if errors.Is(<-errc, http.ErrServerClosed) && err == nil {
		a.log.Info("identity agent stopped")
	}
	return err
}

// hello asks the authority for the host's identities, and says what it
// heard.
func (a *Agent) hello(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ids, err := a.authority.refreshHost(ctx)
	if err != nil {
		a.log.Warn("identity authority not reachable; will retry when a client asks",
			"authority", a.cfg.Authority, "host", a.cfg.Host, "err", err)
		return
	}
	names := make([]string, len(ids))
	for i, mi := range ids {
		names[i] = mi.Name
	}
	a.log.Info("identity agent enrolled", "host", a.cfg.Host, "identities", names,
		"credential_expires", a.authority.expires())
}

// Run opens the agent and serves until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.Open(ctx); err != nil {
		return err
	}
	return a.Serve(ctx)
}

// Close stops listening. It is safe to call more than once.
func (a *Agent) Close() error {
	var err error
	a.closeOnce.Do(func() {
		if a.listener != nil {
			err = a.listener.Close()
		}
	})
	return err
}

// Endpoint is IDENTITY_ENDPOINT, known once Open has returned.
func (a *Agent) Endpoint() string { return a.endpoint }

// Header is IDENTITY_HEADER. It is secret from other users of the host:
// print it for the client's environment, never log it.
func (a *Agent) Header() string { return a.cfg.Header }

// Environment returns the variables a client process needs, as
// NAME=VALUE, once Open has returned.
func (a *Agent) Environment() []string {
	return []string{"IDENTITY_ENDPOINT=" + a.endpoint, "IDENTITY_HEADER=" + a.cfg.Header}
}

// WriteEnvFile writes Environment to path, mode 0600, one variable a line,
// in a form a shell can source and a systemd EnvironmentFile can read.
func (a *Agent) WriteEnvFile(path string) error {
	body := strings.Join(a.Environment(), "\n") + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return fmt.Errorf("writing environment file: %w", err)
	}
	return nil
}

// ReadHeaderFromEnvFile returns the IDENTITY_HEADER of an environment
// file an agent wrote before, or "" when there is none; an agent that
// reuses it keeps working for clients started against its predecessor.
func ReadHeaderFromEnvFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading environment file: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "IDENTITY_HEADER="); ok {
			return v, nil
		}
	}
	return "", nil
}
