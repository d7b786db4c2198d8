package identity_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/identity"
	"github.com/keygate/keygate/internal/seal"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/testkit"
)

// Audiences the test authorities issue tokens for.
const (
	vaultAudience  = "https://vault.keygate.test:8443"
	manageAudience = "api://keygate-manage"
)

// logBuffer collects log output; it is safe for concurrent use.
type logBuffer = testkit.Buffer

// fixture is an initialized Authority served over TLS on loopback.
type fixture struct {
	store  store.Store
	sealer *seal.Sealer
	logs   *logBuffer
	auth   *identity.Authority
	srv    *httptest.Server
	audit  *auditBuffer
	now    func() time.Time // nil means time.Now
	tweak  func(*identity.Config)
}

// config returns the Authority configuration of the fixture, for srvURL.
func (f *fixture) config(srvURL string) identity.Config {
	cfg := identity.Config{
		Store:     f.store,
		Sealer:    f.sealer,
		URL:       srvURL,
		Audiences: []string{vaultAudience, manageAudience},
		Logger:    slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Audit:     f.audit,
		Now:       f.now,
	}
	if f.tweak != nil {
		f.tweak(&cfg)
	}
	return cfg
}

// newFixture starts an Authority on st (a new memStore when nil) behind a
// TLS server whose mux mounts its Handler as keygate's server does.
func newFixture(t *testing.T, st store.Store, sealer *seal.Sealer) *fixture {
	t.Helper()
	return newFixtureAt(t, st, sealer, nil)
}

// newFixtureAt is newFixture with the authority's clock now (nil for
// time.Now).
func newFixtureAt(t *testing.T, st store.Store, sealer *seal.Sealer, now func() time.Time) *fixture {
	t.Helper()
	return newFixtureWith(t, st, sealer, func(c *identity.Config) { c.Now = now })
}

// newFixtureWith is newFixture with the authority's configuration changed
// by tweak.
func newFixtureWith(t *testing.T, st store.Store, sealer *seal.Sealer, tweak func(*identity.Config)) *fixture {
	t.Helper()
	if st == nil {
		st = newMemStore()
	}
	if sealer == nil {
		sealer = newSealer(t)
	}
	f := &fixture{store: st, sealer: sealer, logs: &logBuffer{}, audit: &auditBuffer{}, tweak: tweak}

	// The server starts first: the authority's URL is the server's.
	mux := http.NewServeMux()
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	f.auth = identity.New(f.config(f.srv.URL))
	if err := f.auth.Init(t.Context()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	mux.Handle("/"+f.auth.TenantID()+"/", f.auth.Handler())
	return f
}

func newSealer(t *testing.T) *seal.Sealer {
	t.Helper()
	k, err := seal.GenerateKey()
	if err != nil {
		t.Fatalf("generating seal key: %v", err)
	}
	s, err := seal.NewSealer(k)
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	return s
}

// newPrincipal creates a service principal and returns it with its secret.
func (f *fixture) newPrincipal(t *testing.T, roles ...string) (identity.ServicePrincipal, string) {
	t.Helper()
	sp, secret, err := f.auth.CreateServicePrincipal(t.Context(), "test app", roles)
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	return sp, secret
}

// credential returns the Azure SDK's client secret credential for the
// fixture's authority, configured as a keygate client configures it.
func (f *fixture) credential(t *testing.T, clientID, secret string) *azidentity.ClientSecretCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(f.auth.TenantID(), clientID, secret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: f.clientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatalf("NewClientSecretCredential: %v", err)
	}
	return cred
}

// clientOptions point an SDK credential at the fixture's authority.
func (f *fixture) clientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: f.srv.URL + "/"},
		Transport: f.srv.Client(),
	}
}

// getToken asks the SDK for a token for scope, failing fast rather than
// waiting out the SDK's retries.
func getToken(t *testing.T, cred *azidentity.ClientSecretCredential, scope string) (azcore.AccessToken, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	return cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
}

// verifier returns a verifier configured from a, as the vault configures
// its own.
func verifier(a *identity.Authority, audience string) *authz.Verifier {
	return authz.NewVerifier(authz.VerifierConfig{
		Issuer:    a.Issuer(),
		TenantID:  a.TenantID(),
		Audiences: []string{audience},
		Keys:      a,
	})
}

// auditBuffer collects audit records; it is safe for concurrent use.
type auditBuffer struct {
	mu      sync.Mutex
	records []audit.Record
}

func (b *auditBuffer) Log(r audit.Record) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.records = append(b.records, r)
}

// all returns the records so far.
func (b *auditBuffer) all() []audit.Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.records)
}

// last returns the latest record, or the zero Record.
func (b *auditBuffer) last() audit.Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.records) == 0 {
		return audit.Record{}
	}
	return b.records[len(b.records)-1]
}
