// Package vaulttest starts a real keygate vault on loopback for tests
// outside the vault's own packages (the gateway's, chiefly), and gives them
// the administrator's credentials and an azsecrets client. Only tests
// import it.
package vaulttest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/client"
	"github.com/keygate/keygate/internal/server"
)

// Vault is a running vault and its administrator.
type Vault struct {
	// URL is the vault's URL (https://127.0.0.1:PORT); CAFile is the PEM
	// file of the CA its TLS certificate comes from.
	URL    string
	CAFile string

	// Admin is the administrator service principal of admin.json, with
	// URL and authority as this run has them.
	Admin client.Credentials

	// Secrets is an azsecrets client acting as the administrator.
	Secrets *azsecrets.Client

	t    testing.TB
	dir  string
	addr string
	stop func()
}

// Start starts a vault with its data in a temporary folder and stops it
// when the test ends. log, when not nil, receives the vault's logs.
func Start(t testing.TB, log io.Writer) *Vault {
	t.Helper()
	v := &Vault{t: t, dir: filepath.Join(t.TempDir(), "vault"), addr: "127.0.0.1:0"}
	v.start(log)
	return v
}

func (v *Vault) start(log io.Writer) {
	t := v.t
	t.Helper()
	if log == nil {
		log = io.Discard
	}
	srv := server.New(server.Config{
		DataDir: v.dir,
		Listen:  v.addr,
		Logger:  slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Open(ctx); err != nil {
		cancel()
		t.Fatalf("opening vault: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
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
	creds, err := client.Load(srv.AdminFile())
	if err != nil {
		t.Fatal(err)
	}
	creds.VaultURL, creds.AuthorityHost, creds.CAFile = srv.URL(), srv.AuthorityHost(), srv.CAFile()
	v.Admin = creds
	if v.Secrets, err = creds.Secrets(v.URL); err != nil {
		t.Fatal(err)
	}
}

// Stop stops the vault; Restart starts it again on the same address and
// data.
func (v *Vault) Stop() { v.stop() }

// Restart starts a stopped vault again.
func (v *Vault) Restart() {
	v.t.Helper()
	v.start(nil)
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
