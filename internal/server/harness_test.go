package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/client"
	"github.com/keygate/keygate/internal/server"
	"github.com/keygate/keygate/internal/testkit"
)

// clock is a settable clock shared by a test and its server.
type clock = testkit.Clock

func newClock() *clock { return testkit.NewClock(time.Now()) }

// logBuffer collects everything a server logs, so tests can search it for
// secret material.
type logBuffer = testkit.Buffer

// testVault is a running vault server and an administrator client of it.
type testVault struct {
	t       testing.TB
	srv     *server.Server
	dir     string
	clock   *clock
	logs    *logBuffer
	audit   *logBuffer // the audit log, JSON lines
	creds   client.Credentials
	http    *http.Client
	secrets *azsecrets.Client
	stop    func()
}

type vaultOption func(*server.Config)

// startVault starts a vault server on a loopback port with its data in
// dir (a fresh temporary folder when empty) and stops it when the test
// ends.
func startVault(t testing.TB, dir string, opts ...vaultOption) *testVault {
	t.Helper()
	tv := startVaultNoConnect(t, dir, opts...)
	tv.connect()
	return tv
}

// startVaultNoConnect starts the server without building clients.
func startVaultNoConnect(t testing.TB, dir string, opts ...vaultOption) *testVault {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "data")
	}
	tv := &testVault{t: t, dir: dir, clock: newClock(), logs: &logBuffer{}, audit: &logBuffer{}}
	log := slog.New(slog.NewJSONHandler(io.MultiWriter(tv.logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := server.Config{
		DataDir:  dir,
		Listen:   "127.0.0.1:0",
		StoreURL: testStoreURL(t, dir),
		Now:      tv.clock.Now,
		Logger:   log,
		Audit:    audit.NewWriter(tv.audit, log),
	}
	for _, o := range opts {
		o(&cfg)
	}
	tv.srv = server.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	if err := tv.srv.Open(ctx); err != nil {
		cancel()
		t.Fatalf("opening server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- tv.srv.Serve(ctx) }()
	tv.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serving: %v", err)
		}
	})
	t.Cleanup(tv.stop)
	return tv
}

// connect reads admin.json and builds the administrator's SDK client.
func (tv *testVault) connect() { tv.connectWith("") }

// connectWith is connect with the clients trusting caFile instead of the
// CA that admin.json names, when caFile is not empty.
func (tv *testVault) connectWith(caFile string) {
	t := tv.t
	t.Helper()
	creds, err := client.Load(tv.srv.AdminFile())
	if err != nil {
		t.Fatal(err)
	}
	// admin.json names the URL of the first start; a restarted server may
	// listen on another port.
	creds.VaultURL = tv.srv.URL()
	creds.AuthorityHost = tv.srv.AuthorityHost()
	if caFile != "" {
		creds.CAFile = caFile
	}
	tv.creds = creds
	tv.http, err = client.Transport(creds.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	tv.secrets, err = creds.Secrets(tv.srv.URL())
	if err != nil {
		t.Fatal(err)
	}
}

// clientFor returns an azsecrets client that authenticates as the given
// service principal.
func (tv *testVault) clientFor(clientID, secret string) *azsecrets.Client {
	tv.t.Helper()
	c := tv.creds
	c.ClientID, c.ClientSecret = clientID, secret
	sc, err := c.Secrets(tv.srv.URL())
	if err != nil {
		tv.t.Fatal(err)
	}
	return sc
}

// do sends a raw request to the vault with an optional bearer token.
func (tv *testVault) do(method, path, token, body string) (*http.Response, string) {
	tv.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, tv.srv.URL()+path, rd)
	if err != nil {
		tv.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := tv.http.Do(req)
	if err != nil {
		tv.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// adminToken returns a data-plane token for the administrator.
func (tv *testVault) adminToken() string {
	tv.t.Helper()
	tok, err := tv.creds.Token(context.Background(), tv.http, tv.srv.Resource()+"/.default")
	if err != nil {
		tv.t.Fatal(err)
	}
	return tok
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// statusOf returns the HTTP status of an SDK error, or 0.
func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// codeOf returns the Key Vault error code of an SDK error, or "".
func codeOf(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
