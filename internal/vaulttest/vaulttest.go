// Package vaulttest starts a real keygate vault on loopback for tests
// outside the vault's own packages (the gateway's, chiefly), and gives them
// the administrator's credentials, azsecrets and azcertificates clients,
// the management API, identity agents and a clock to drive. Only tests
// import it.
package vaulttest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/client"
	"github.com/keygate/keygate/internal/server"
	"github.com/keygate/keygate/internal/testkit"
)

// Options change how a vault starts. The zero value is Start's vault.
type Options struct {
	// Log, when not nil, receives the vault's logs.
	Log io.Writer

	// Clock, when not nil, is the vault's clock, for tests that move time
	// to where certificates fall due for renewal.
	Clock *Clock

	// TokenLifetime is the lifetime of the tokens the vault's authority
	// issues; zero means its default (an hour). A test that moves the
	// clock by months sets it longer than that, so that tokens clients
	// hold stay valid.
	TokenLifetime time.Duration

	// PurgeInterval is how often the vault purges what is past its
	// retention, events included; zero means an hour.
	PurgeInterval time.Duration

	// StoreURL is a PostgreSQL database to keep the vault in (see
	// pgtest.URL); empty means the embedded store. StartReplica needs it.
	StoreURL string

	// MaxCallerEventStreams bounds the event streams of one caller from
	// one address; zero means the server's default.
	MaxCallerEventStreams int

	// replicaOf, set by StartReplica, is the vault whose store, master
	// key and URL a replica shares.
	replicaOf *Vault
}

// Clock is a settable clock shared by a test and its vault.
type Clock = testkit.Clock

// NewClock returns a clock that starts at the current time and moves only
// when advanced.
func NewClock() *Clock { return testkit.NewClock(time.Now()) }

// Vault is a running vault and its administrator.
type Vault struct {
	// URL is the vault's URL (https://127.0.0.1:PORT); CAFile is the PEM
	// file of the CA its TLS certificate comes from.
	URL    string
	CAFile string

	// Admin is the administrator service principal of admin.json, with
	// URL and authority as this run has them.
	Admin client.Credentials

	// Secrets and Certificates are SDK clients acting as the
	// administrator.
	Secrets      *azsecrets.Client
	Certificates *azcertificates.Client

	// HTTP is an HTTP client that trusts the vault's CA.
	HTTP *http.Client

	t    testing.TB
	opts Options
	dir  string
	addr string
	srv  *server.Server
	stop func()
}

// Start starts a vault with its data in a temporary folder and stops it
// when the test ends. log, when not nil, receives the vault's logs.
func Start(t testing.TB, log io.Writer) *Vault {
	t.Helper()
	return StartWith(t, Options{Log: log})
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Vault {
	t.Helper()
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	v := &Vault{t: t, opts: opts, dir: filepath.Join(t.TempDir(), "vault"), addr: "127.0.0.1:0"}
	v.start()
	return v
}

func (v *Vault) start() {
	t := v.t
	t.Helper()
	cfg := server.Config{
		DataDir:       v.dir,
		Listen:        v.addr,
		Logger:        slog.New(slog.NewJSONHandler(v.opts.Log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		TokenLifetime: v.opts.TokenLifetime,
		PurgeInterval: v.opts.PurgeInterval,
		StoreURL:      v.opts.StoreURL,

		MaxCallerEventStreams: v.opts.MaxCallerEventStreams,
	}
	if p := v.opts.replicaOf; p != nil {
		key, err := os.ReadFile(filepath.Join(p.dir, "master.key"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.MasterKey, cfg.PublicURL = strings.TrimSpace(string(key)), p.URL
	}
	if v.opts.Clock != nil {
		cfg.Now = v.opts.Clock.Now
	}
	srv := server.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Open(ctx); err != nil {
		cancel()
		t.Fatalf("opening vault: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	v.srv = srv
	v.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("vault: %v", err)
		}
	})
	t.Cleanup(v.stop)

	// The same address on a restart, so that clients keep working.
	v.URL, v.CAFile = srv.URL(), srv.CAFile()
	v.addr = v.URL[len("https://"):]
	creds, err := v.adminCredentials()
	if err != nil {
		t.Fatal(err)
	}
	v.Admin = creds
	if v.Secrets, err = creds.Secrets(v.URL); err != nil {
		t.Fatal(err)
	}
	if v.Certificates, err = creds.Certificates(v.URL); err != nil {
		t.Fatal(err)
	}
	if v.HTTP, err = client.Transport(v.CAFile); err != nil {
		t.Fatal(err)
	}
}

// adminCredentials are the administrator's, for this vault's address.
func (v *Vault) adminCredentials() (client.Credentials, error) {
	if p := v.opts.replicaOf; p != nil {
		// A replica serves at its own address; tokens come from the
		// authority at the URL it shares with the first vault, as they
		// would through a load balancer.
		v.URL, v.addr = "https://"+v.srv.Addr(), v.srv.Addr()
		creds := p.Admin
		creds.VaultURL = v.URL
		return creds, nil
	}
	creds, err := client.Load(v.srv.AdminFile())
	creds.VaultURL, creds.AuthorityHost, creds.CAFile = v.srv.URL(), v.srv.AuthorityHost(), v.srv.CAFile()
	return creds, err
}

// StartReplica starts a second vault server on v's PostgreSQL store (v
// must have been started with Options.StoreURL), with v's master key and
// v's URL as its public URL, as a replica behind one load-balanced address
// would run. Its URL is its own address, and its clients obtain tokens
// from v's authority, which the replica accepts.
func (v *Vault) StartReplica() *Vault {
	v.t.Helper()
	if v.opts.StoreURL == "" {
		v.t.Fatal("vaulttest: StartReplica needs a vault started with a StoreURL")
	}
	opts := v.opts
	opts.replicaOf = v
	r := &Vault{t: v.t, opts: opts, dir: filepath.Join(v.t.TempDir(), "replica"), addr: "127.0.0.1:0"}
	r.start()
	return r
}

// Stop stops the vault; Restart starts it again on the same address and
// data.
func (v *Vault) Stop() { v.stop() }

// Restart starts a stopped vault again.
func (v *Vault) Restart() {
	v.t.Helper()
	v.start()
}

// Resource is the resource the vault's bearer challenge names.
func (v *Vault) Resource() string { return v.srv.Resource() }

// VaultURL is the URL of the vault called name, served beside the
// default one at NAME.localhost:PORT (see LoopbackClient).
func (v *Vault) VaultURL(name string) string { return v.srv.VaultURL(name) }

// RunCertificateJobs runs the certificate renewals and lifetime actions
// due at the vault's clock, as the vault's scheduler does on its own.
func (v *Vault) RunCertificateJobs() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v.srv.RunCertificateJobs(ctx)
}

// SetSecret stores a secret and returns its new version.
func (v *Vault) SetSecret(name, value, contentType string) string {
	v.t.Helper()
	params := azsecrets.SetSecretParameters{Value: to.Ptr(value)}
	if contentType != "" {
		params.ContentType = to.Ptr(contentType)
	}
	resp, err := v.Secrets.SetSecret(context.Background(), name, params, nil)
	if err != nil {
		v.t.Fatalf("setting secret %s: %v", name, err)
	}
	return resp.ID.Version()
}

// WriteClientSecret writes the administrator's client secret to a file
// (mode 0600) in a temporary folder and returns its path, for a
// ClientSecret credential that reads it from there.
func (v *Vault) WriteClientSecret() string {
	v.t.Helper()
	p := filepath.Join(v.t.TempDir(), "client-secret")
	if err := os.WriteFile(p, []byte(v.Admin.ClientSecret+"\n"), 0o600); err != nil {
		v.t.Fatal(err)
	}
	return p
}

// LoopbackClient returns an HTTP client that trusts the vault's CA and
// connects requests for NAME.localhost to the vault's address, as a
// hosts-file entry would; other hosts are dialed as they are.
func (v *Vault) LoopbackClient() *http.Client {
	hc, err := client.Transport(v.CAFile)
	if err != nil {
		v.t.Fatal(err)
	}
	tr := hc.Transport.(*http.Transport)
	d := &net.Dialer{Timeout: 10 * time.Second}
	vaultAddr := v.addr
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, _ := net.SplitHostPort(addr); strings.HasSuffix(host, ".localhost") {
			addr = vaultAddr
		}
		return d.DialContext(ctx, network, addr)
	}
	return hc
}
