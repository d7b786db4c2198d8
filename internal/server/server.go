// Package server assembles a keygate vault server: the data folder, the
// master key, the store, the identity authority, the vault domain, and the
// HTTPS listener that serves the Key Vault data plane, the authority's
// endpoints and the management API side by side.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/agent"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/identity"
	"github.com/keygate/keygate/internal/manage"
	"github.com/keygate/keygate/internal/renew"
	"github.com/keygate/keygate/internal/seal"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
	"github.com/keygate/keygate/internal/vault/httpapi"
	"github.com/keygate/keygate/internal/vaultmetrics"
)

// MasterKeyEnv is the environment variable that may carry the master key.
const MasterKeyEnv = "KEYGATE_MASTER_KEY"

// Config configures a Server. DataDir and Listen are required.
type Config struct {
	// DataDir holds the database, the master key (unless given otherwise),
	// tls/ca.pem and admin.json. It is created with mode 0700.
	DataDir string

	// Listen is the TCP address to serve HTTPS on, e.g. 127.0.0.1:8443.
	// Port 0 picks a free port; URL reports it.
	Listen string

	// Hostname is the DNS name clients reach the vault by. With it, the
	// bearer challenge names its parent domain as resource, so the Go SDK
	// keeps challenge verification on. Without it, clients reach the vault
	// by IP address and must disable that verification.
	Hostname string

	// PublicURL is the URL clients reach the vault by when that is not
	// Hostname at the listening port: a load balancer in front of several
	// replicas, say, which must all be given the same PublicURL so that a
	// token one issues is valid at the others. It is an https origin with
	// no path; its host goes into the server certificate as well. Empty
	// derives the URL from Hostname (or the listening address) and port.
	PublicURL string

	// TLSCertFile and TLSKeyFile are the operator's server certificate and
	// key in PEM. Empty means a certificate issued by the local CA.
	TLSCertFile string
	TLSKeyFile  string

	// StoreURL selects the store: empty for the embedded database in
	// DataDir, or a postgres:// URL (or libpq key=value string) of a
	// PostgreSQL database that several vault replicas share. Replicas of
	// one database must all be given its master key.
	StoreURL string

	// MasterKey is the master key in text form (from MasterKeyEnv);
	// MasterKeyFile is a path to a key file. Both empty means DataDir's
	// master.key, created with a new database.
	MasterKey     string
	MasterKeyFile string

	// PurgeInterval is how often soft-deleted objects past their retention
	// are purged. Default one hour.
	PurgeInterval time.Duration

	// RenewInterval is how often certificate lifetime actions are checked
	// when nothing wakes the scheduler sooner. Default renew.DefaultInterval.
	RenewInterval time.Duration

	// TokenLifetime is the lifetime of issued access tokens; zero means the
	// authority's default.
	TokenLifetime time.Duration

	// SigningKeyRotation is how old the newest token signing key may grow
	// before the authority adds another, coordinated across replicas;
	// zero rotates only when asked (keygate identity signing-key rotate).
	SigningKeyRotation time.Duration

	// ShutdownTimeout bounds a graceful shutdown. Default 10 seconds.
	ShutdownTimeout time.Duration

	// AgentListen, when not empty, is the loopback address of a
	// managed-identity agent the server runs beside the vault, for the
	// identity LocalIdentity on host LocalHost (created on first start
	// with get on the default vault's secrets). `keygate up` sets it.
	AgentListen string

	// MaxEventStreams bounds the event streams open at once, and
	// MaxCallerEventStreams those of one caller from one address; zero
	// means httpapi's defaults (10000 and 32).
	MaxEventStreams       int
	MaxCallerEventStreams int

	// OpsListen, when not empty, is the address of a plain HTTP listener
	// for Prometheus metrics (/metrics) and health checks (/healthz,
	// /readyz, which fails while the store is unreachable).
	OpsListen string

	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger

	// Audit receives one record per request to the data plane, the
	// management API, the authority's token endpoints and the local
	// agent. nil discards them.
	Audit audit.Logger
}

// Server is a vault server. Open prepares it, Serve serves until its
// context ends; Run does both.
type Server struct {
	cfg Config
	dir dataDir
	log *slog.Logger
	now func() time.Time

	st        store.Store
	sealer    *seal.Sealer
	serving   *servingCert // the certificate the listener serves
	authority *identity.Authority
	vaults    *vault.Service
	dataPlane *httpapi.Handler
	renewer   *renew.Scheduler
	listener  net.Listener
	http      *http.Server
	agent     *agent.Agent // nil unless Config.AgentListen is set
	audit     audit.Logger

	// The operations listener and its server, nil unless
	// Config.OpsListen is set; metrics are kept either way.
	metrics     *vaultmetrics.Metrics
	opsListener net.Listener
	ops         *http.Server

	addr          string
	vaultURL      string
	authorityHost string
	resource      string

	closeOnce sync.Once
}

// New returns a Server for cfg. It does no I/O.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, dir: dataDir(cfg.DataDir), log: cfg.Logger, now: cfg.Now, metrics: vaultmetrics.New()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	// Metrics read the audit records; without a listener to serve them,
	// they are not fed, which spares the read path the records' cost.
	s.audit = audit.Tee(cfg.Audit)
	if cfg.OpsListen != "" {
		s.audit = audit.Tee(cfg.Audit, s.metrics)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.PurgeInterval <= 0 {
		s.cfg.PurgeInterval = time.Hour
	}
	if s.cfg.ShutdownTimeout <= 0 {
		s.cfg.ShutdownTimeout = 10 * time.Second
	}
	return s
}

// URL is the vault's URL, known once Open has returned.
func (s *Server) URL() string { return s.vaultURL }

// Addr is the address the server listens on, known once Open has
// returned. Behind a load balancer it differs from URL's.
func (s *Server) Addr() string { return s.addr }

// AuthorityHost is the identity authority's host URL (with a trailing
// slash, as azidentity takes it), known once Open has returned.
func (s *Server) AuthorityHost() string { return s.authorityHost }

// Resource is the resource clients request tokens for.
func (s *Server) Resource() string { return s.resource }

// TenantID is the authority's tenant, known once Open has returned.
func (s *Server) TenantID() string { return s.authority.TenantID() }

// AdminFile is the path of admin.json.
func (s *Server) AdminFile() string { return s.dir.adminFile() }

// CAFile is the path of the local CA certificate, tls/ca.pem.
func (s *Server) CAFile() string { return s.dir.caFile() }

// Authority is the server's identity authority, known once Open has
// returned.
func (s *Server) Authority() *identity.Authority { return s.authority }

// RunCertificateJobs runs the certificate jobs due at the server's clock
// (renewals, lifetime events, creations) and waits for them, as the
// scheduler does on its own every RenewInterval. Tests that drive the
// clock call it.
func (s *Server) RunCertificateJobs(ctx context.Context) { s.renewer.RunOnce(ctx) }

// Run opens the server and serves until ctx is done. A ctx that ends
// while the server is still opening is a shutdown asked for early, not a
// failure: Run then closes what it opened and returns nil.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Open(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			s.log.Info("vault stopped while starting")
			return nil
		}
		return err
	}
	return s.Serve(ctx)
}

// Open does everything short of serving: it checks the data folder, finds
// the master key, opens the store and proves the key opens it, listens, and
// sets up the authority and the vault. On error, whatever it opened is
// closed again.
func (s *Server) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	// The data folder and the store, with the key that seals it.
	if err := checkPublicURL(s.cfg.PublicURL); err != nil {
		return err
	}
	if err := s.dir.prepare(); err != nil {
		return err
	}
	sealer, err := s.openStore(ctx)
	if err != nil {
		return err
	}
	s.sealer = sealer
	if err := checkMasterKey(ctx, s.st, sealer); err != nil {
		return err
	}

	// The listener first: its address is part of every URL below.
	s.listener, err = net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Listen, err)
	}
	s.addr = s.listener.Addr().String()
	s.setURLs()
	if err := s.openOps(); err != nil {
		return err
	}

	// The authority, the vault and the administrator.
	if err := s.openServices(ctx, sealer); err != nil {
		return err
	}

	// TLS and the routes.
	cert, err := s.serverCertificate(ctx)
	if err != nil {
		return err
	}
	if s.serving, err = newServingCert(cert, s.cfg.TLSCertFile, s.cfg.TLSKeyFile); err != nil {
		return err
	}
	s.http = &http.Server{
		Handler:           s.routes(),
		TLSConfig:         &tls.Config{GetCertificate: s.serving.get, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	// Event streams never end by themselves; a shutdown ends them.
	s.http.RegisterOnShutdown(s.dataPlane.EndStreams)

	// The local agent, which talks to the listener above once it serves.
	return s.openAgent(ctx)
}

// setURLs derives the vault URL, the authority host and the resource from
// the public URL, or else the configured host name or the listening
// address.
func (s *Server) setURLs() {
	host, port, _ := net.SplitHostPort(s.addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	if s.cfg.Hostname != "" {
		host = s.cfg.Hostname
	}
	origin := "https://" + net.JoinHostPort(host, port)
	if s.cfg.PublicURL != "" {
		u, _ := url.Parse(s.cfg.PublicURL) // checked by checkPublicURL
		origin = "https://" + u.Host
		host, port = u.Hostname(), u.Port()
	}
	s.vaultURL = origin
	s.authorityHost = origin + "/"
	s.resource = "https://" + resourceHost(host)
	if port != "" {
		s.resource = "https://" + net.JoinHostPort(resourceHost(host), port)
	}
}

// checkPublicURL refuses a public URL the SDKs could not use: the vault
// must be served over HTTPS at the root of its host.
func checkPublicURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("public URL %q: not a URL", raw)
	case u.Scheme != "https":
		return fmt.Errorf("public URL %q: must be https", raw)
	case u.Hostname() == "":
		return fmt.Errorf("public URL %q: has no host", raw)
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("public URL %q: must be an origin (https://HOST[:PORT]): the Key Vault SDKs expect the vault at the root of its host", raw)
	}
	return nil
}

// resourceHost is the host the challenge names as resource: the parent
// domain of a DNS name, which the SDK requires the vault's host to be a
// subdomain of. An IP address or a one-label name has no parent; clients
// reaching such a vault disable challenge verification.
func resourceHost(host string) string {
	if net.ParseIP(host) != nil {
		return host
	}
	if _, parent, ok := strings.Cut(host, "."); ok && strings.Contains(parent, ".") {
		return parent
	}
	return host
}

func (s *Server) openServices(ctx context.Context, sealer *seal.Sealer) error {
	s.authority = identity.New(identity.Config{
		Store:         s.st,
		Sealer:        sealer,
		URL:           strings.TrimSuffix(s.authorityHost, "/"),
		Audiences:     []string{s.resource, manage.Audience},
		TokenLifetime: s.cfg.TokenLifetime,

		KeyRotationInterval: s.cfg.SigningKeyRotation,
		Now:                 s.now,
		Logger:              s.log.With("component", "identity"),
		Audit:               s.audit,
	})
	if err := s.authority.Init(ctx); err != nil {
		return fmt.Errorf("starting identity authority: %w", err)
	}
	backup, err := sealer.Derive("backup")
	if err != nil {
		return err
	}
	s.vaults = vault.New(vault.Config{
		Store: s.st, Sealer: sealer, BackupSealer: backup,
		Now: s.now, Logger: s.log.With("component", "vault"),
	})
	notifier, _ := s.st.(store.Notifier)
	s.renewer = renew.New(renew.Config{
		Vaults: s.vaults, Notifier: notifier, Interval: s.cfg.RenewInterval,
		Logger: s.log.With("component", "renew"), Finished: s.metrics.Job,
	})
	return s.ensureAdmin(ctx)
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	tenant := s.authority.TenantID()
	mux.Handle("/"+tenant+"/", s.authority.Handler())

	verifier := func(aud string) *authz.Verifier {
		return authz.NewVerifier(authz.VerifierConfig{
			Issuer: s.authority.Issuer(), TenantID: tenant, Audiences: []string{aud},
			Keys: s.authority, Now: s.now,
		})
	}
	s.dataPlane = httpapi.New(httpapi.Config{
		Vaults:       s.vaults,
		Verifier:     verifier(s.resource),
		Authority:    strings.TrimSuffix(s.authorityHost, "/") + "/" + tenant,
		Resource:     s.resource,
		VaultForHost: s.vaultForHost,
		Logger:       s.log.With("component", "httpapi"),
		Audit:        s.audit,
		Now:          s.now,

		MaxStreams:       s.cfg.MaxEventStreams,
		MaxCallerStreams: s.cfg.MaxCallerEventStreams,
	})
	s.dataPlane.Register(mux)
	snapshotter, _ := s.st.(store.Snapshotter)
	manage.New(manage.Config{
		Vaults:             s.vaults,
		Identities:         s.authority,
		Verifier:           verifier(manage.Audience),
		VaultURL:           s.VaultURL,
		ReservedVaultNames: s.reservedVaultNames(),
		Logger:             s.log.With("component", "manage"),
		Audit:              s.audit,
		Snapshotter:        snapshotter,
		Now:                s.now,
	}).Register(mux)
	return mux
}

// Serve serves HTTPS on the listener Open made until ctx is done, then
// shuts down gracefully within the shutdown timeout and closes the store.
func (s *Server) Serve(ctx context.Context) error {
	defer s.Close()
	var wg sync.WaitGroup
	bg, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		if s.ops != nil {
			s.ops.Close() // when serving failed, nothing shut it down
		}
		wg.Wait()
	}()
	wg.Go(func() { s.vaults.RunPurger(bg, s.cfg.PurgeInterval) })
	wg.Go(func() { s.renewer.Run(bg) })
	wg.Go(func() { s.authority.Run(bg) })
	wg.Go(func() { s.keepCredentials(bg) })

	errc := make(chan error, 1)
	go func() { errc <- s.http.ServeTLS(s.listener, "", "") }()
	s.log.Info("vault listening", "url", s.vaultURL, "addr", s.addr, "resource", s.resource)
	if s.ops != nil {
		wg.Go(func() {
			if err := s.ops.Serve(s.opsListener); !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("metrics and health listener stopped", "err", err)
			}
		})
		s.log.Info("metrics and health checks listening", "addr", s.OpsAddr())
	}
	if s.agent != nil {
		wg.Go(func() {
			if err := s.agent.Serve(bg); err != nil {
				s.log.Error("identity agent stopped", "err", err)
			}
		})
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if s.ops != nil {
		// Ready no more, before the vault stops answering.
		s.ops.Shutdown(shutdownCtx)
	}
	err := s.http.Shutdown(shutdownCtx)
	if errors.Is(<-errc, http.ErrServerClosed) && err == nil {
		s.log.Info("vault stopped")
	}
	return err
}

// Close releases the listener and the store. It is safe to call more than
// once and after Serve.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.listener != nil {
			s.listener.Close()
		}
		if s.opsListener != nil {
			s.opsListener.Close()
		}
		if s.agent != nil {
			s.agent.Close()
		}
		if s.st != nil {
			err = s.st.Close()
		}
	})
	return err
}
