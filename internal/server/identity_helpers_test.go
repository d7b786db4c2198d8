package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/agent"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/client"
	"github.com/keygate/keygate/internal/manage"
)

// manage calls the management API as the administrator and returns the
// status and the decoded answer.
func (tv *testVault) manage(method, path string, body any) (int, map[string]any) {
	tv.t.Helper()
	tok, err := tv.creds.Token(ctxT(tv.t), tv.http, manage.Audience+"/.default")
	if err != nil {
		tv.t.Fatal(err)
	}
	return tv.manageAs(tok, method, path, body)
}

// manageAs calls the management API with token. A string body is sent as
// it is; anything else as JSON.
func (tv *testVault) manageAs(token, method, path string, body any) (int, map[string]any) {
	tv.t.Helper()
	b, raw := body.(string)
	if body != nil && !raw {
		raw, err := json.Marshal(body)
		if err != nil {
			tv.t.Fatal(err)
		}
		b = string(raw)
	}
	resp, out := tv.do(method, "/management"+path, token, b)
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		tv.t.Fatalf("%s %s: answer is not a JSON object: %q", method, path, out)
	}
	return resp.StatusCode, doc
}

// mustManage is manage that fails the test unless the status is want.
func (tv *testVault) mustManage(want int, method, path string, body any) map[string]any {
	tv.t.Helper()
	status, doc := tv.manage(method, path, body)
	if status != want {
		tv.t.Fatalf("%s %s: %d %v, want %d", method, path, status, doc, want)
	}
	return doc
}

// auditRecords decodes everything audited so far.
func (tv *testVault) auditRecords() []audit.Record {
	tv.t.Helper()
	var out []audit.Record
	sc := bufio.NewScanner(strings.NewReader(tv.audit.String()))
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			tv.t.Fatalf("audit line is not a JSON record: %q", sc.Text())
		}
		out = append(out, r)
	}
	return out
}

// findAudit returns the latest audit record that match accepts.
func (tv *testVault) findAudit(match func(audit.Record) bool) (audit.Record, bool) {
	recs := tv.auditRecords()
	for i := len(recs) - 1; i >= 0; i-- {
		if match(recs[i]) {
			return recs[i], true
		}
	}
	return audit.Record{}, false
}

// mustFindAudit is findAudit that fails the test when nothing matches.
func (tv *testVault) mustFindAudit(what string, match func(audit.Record) bool) audit.Record {
	tv.t.Helper()
	r, ok := tv.findAudit(match)
	if !ok {
		tv.t.Fatalf("no audit record of %s; audit log:\n%s", what, tv.audit.String())
	}
	return r
}

// createIdentity creates a managed identity through the management API
// and returns its client and principal ids.
func (tv *testVault) createIdentity(name string, service bool) (clientID, principalID string) {
	tv.t.Helper()
	doc := tv.mustManage(http.StatusCreated, "PUT", "/identities/"+name,
		map[string]any{"properties": map[string]any{"keygateService": service}})
	props := doc["properties"].(map[string]any)
	return props["clientId"].(string), props["principalId"].(string)
}

// assign assigns an identity to a host through the management API and
// returns the host's credential, if the host was new.
func (tv *testVault) assign(identityName, host string, lifetime time.Duration) string {
	tv.t.Helper()
	var body any
	if lifetime > 0 {
		body = map[string]any{"credentialLifetimeSeconds": int64(lifetime / time.Second)}
	}
	status, doc := tv.manage("PUT", "/hosts/"+host+"/identities/"+identityName, body)
	if status != http.StatusCreated && status != http.StatusOK {
		tv.t.Fatalf("assigning %s to %s: %d %v", identityName, host, status, doc)
	}
	cred, _ := doc["credential"].(string)
	return cred
}

// startAgent runs an identity agent for host on a loopback port, talking
// to the vault's authority, on the vault's clock, auditing to the vault's
// audit log and logging to its logs (so that scans cover both).
func (tv *testVault) startAgent(host, credential string) *agent.Agent {
	tv.t.Helper()
	log := slog.New(slog.NewJSONHandler(tv.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := agent.New(agent.Config{
		Authority: tv.srv.Authority().TenantURL(), Host: host, Credential: credential,
		HTTPClient: tv.http, Listen: "127.0.0.1:0", Now: tv.clock.Now,
		Logger: log, Audit: audit.NewWriter(tv.audit, log),
	})
	if err != nil {
		tv.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := a.Open(ctx); err != nil {
		cancel()
		tv.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	tv.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tv.t.Errorf("agent: %v", err)
		}
	})
	return a
}

// miClientEnv makes the test binary act as an application that reads a
// secret with a managed identity: azidentity reads IDENTITY_ENDPOINT and
// IDENTITY_HEADER from its process's environment when a credential is
// made, and MSAL caches tokens per process, so each such application is
// a process of its own.
const miClientEnv = "KEYGATE_TEST_MI_CLIENT"

// miClientConfig is what the child application is told, as JSON in
// miClientEnv.
type miClientConfig struct {
	VaultURL   string `json:"vaultUrl"`
	Resource   string `json:"resource"` // what the vault's challenge names
	CAFile     string `json:"caFile"`
	Secret     string `json:"secret"`
	ClientID   string `json:"clientId,omitempty"`   // choose the identity by client id
	ObjectID   string `json:"objectId,omitempty"`   // or by object id
	Default    bool   `json:"default,omitempty"`    // use DefaultAzureCredential
	LocalAddr  string `json:"localAddr,omitempty"`  // dial the vault from this address
	VerifyHost bool   `json:"verifyHost,omitempty"` // keep challenge resource verification on
}

// miClientResult is what the child application reports on stdout.
type miClientResult struct {
	Token     string `json:"token,omitempty"` // reported so that scans can look for it
	TokenErr  string `json:"tokenError,omitempty"`
	Value     string `json:"value,omitempty"`
	Status    int    `json:"status,omitempty"`
	ErrorCode string `json:"errorCode,omitempty"`
	Err       string `json:"error,omitempty"`
}

// runMIClient is the child application's main: it obtains a token
// through the agent, then reads the secret with it.
func runMIClient(raw string) {
	var cfg miClientConfig
	var res miClientResult
	defer func() { json.NewEncoder(os.Stdout).Encode(res) }()
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		res.Err = err.Error()
		return
	}
	hc, err := client.Transport(cfg.CAFile)
	if err != nil {
		res.Err = err.Error()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cred, err := miCredential(cfg)
	if err != nil {
		res.TokenErr = err.Error()
		return
	}
	// The token the SDK will use: MSAL caches it for the scope the
	// vault's challenge asks for.
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{cfg.Resource + "/.default"}})
	if err != nil {
		res.TokenErr = err.Error()
		return
	}
	res.Token = tok.Token

	if cfg.LocalAddr != "" {
		tr := hc.Transport.(*http.Transport)
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(cfg.LocalAddr)}}
		tr.DialContext = d.DialContext
	}
	sc, err := azsecrets.NewClient(cfg.VaultURL, cred, &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: hc},
		DisableChallengeResourceVerification: !cfg.VerifyHost,
	})
	if err != nil {
		res.Err = err.Error()
		return
	}
	s, err := sc.GetSecret(ctx, cfg.Secret, "", nil)
	if err != nil {
		res.Status, res.ErrorCode, res.Err = statusOf(err), codeOf(err), err.Error()
		return
	}
	res.Value = *s.Value
}

// miCredential makes the credential the child application uses.
func miCredential(cfg miClientConfig) (azcore.TokenCredential, error) {
	if cfg.Default {
		return azidentity.NewDefaultAzureCredential(nil)
	}
	var id azidentity.ManagedIDKind
	switch {
	case cfg.ClientID != "":
		id = azidentity.ClientID(cfg.ClientID)
	case cfg.ObjectID != "":
		id = azidentity.ObjectID(cfg.ObjectID)
	}
	return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: id})
}

// runApp runs the child application with env added to this process's
// environment (IDENTITY_* and AZURE_* of this process removed first).
func runApp(t *testing.T, cfg miClientConfig, env ...string) miClientResult {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IDENTITY_") && !strings.HasPrefix(kv, "AZURE_") && !strings.HasPrefix(kv, "MSI_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, append(env, miClientEnv+"="+string(b))...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("client process: %v\n%s", err, stderr.String())
	}
	var res miClientResult
	if err := json.NewDecoder(io.LimitReader(&stdout, 1<<20)).Decode(&res); err != nil {
		t.Fatalf("client process output %q: %v", stdout.String(), err)
	}
	return res
}

// String describes a result without its token.
func (r miClientResult) String() string {
	return fmt.Sprintf("value %q, status %d %s, token error %q, error %q", r.Value, r.Status, r.ErrorCode, r.TokenErr, r.Err)
}

// dialFrom returns an HTTP client like tv's that connects from the local
// address ip, so that a test can be a caller at 127.0.0.2.
func (tv *testVault) dialFrom(ip string) *http.Client {
	tr := tv.http.Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	tr.DialContext = d.DialContext
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// secretsFrom returns an azsecrets client of the administrator that
// connects from the local address ip.
func (tv *testVault) secretsFrom(ip, vaultURL string) *azsecrets.Client {
	tv.t.Helper()
	hc := tv.dialFrom(ip)
	cred, err := tv.creds.Credential(tv.http) // the authority is not behind the firewall
	if err != nil {
		tv.t.Fatal(err)
	}
	c, err := azsecrets.NewClient(vaultURL, cred, &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: hc},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		tv.t.Fatal(err)
	}
	return c
}
