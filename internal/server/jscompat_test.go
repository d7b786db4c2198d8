package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests here run the Azure SDK for JavaScript (@azure/identity,
// @azure/keyvault-secrets, @azure/keyvault-certificates, pinned in
// compat/js/package-lock.json) against a real vault, through
// compat/js/keyvault.mjs: one Node process per credential kind, each
// running its scenarios and printing what it saw as JSON.

// jsDir is the JavaScript client's folder, from this package's.
const jsDir = "../../compat/js"

// jsTimeout bounds one Node process.
const jsTimeout = 60 * time.Second

// needNode skips the test when Node.js or the client's modules are
// missing, saying how to get them.
func needNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH: install Node.js 20 or later (scripts/test.sh does: apt-get install nodejs npm) and run `npm ci` in compat/js")
	}
	// Debian 12's own nodejs is 18, older than the pinned SDK runs on.
	out, err := exec.Command("node", "--version").Output()
	major, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), ".")
	if n, perr := strconv.Atoi(major); err != nil || perr != nil || n < 20 {
		t.Skipf("node --version says %q: the pinned Azure SDK for JavaScript needs Node.js 20 or later; install one and run `npm ci` in compat/js", strings.TrimSpace(string(out)))
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "@azure", "keyvault-secrets")); err != nil {
		t.Skip("compat/js/node_modules is missing: run `npm ci --no-audit --no-fund` in compat/js (scripts/test.sh does)")
	}
}

// runNode runs keyvault.mjs with the scenarios given, env added to this
// process's environment (less anything Azure, identity or Node options
// of its own), and returns each scenario's results.
func runNode(t *testing.T, env []string, scenarios ...string) map[string]json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), jsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{"keyvault.mjs"}, scenarios...)...)
	cmd.Dir = jsDir
	cmd.WaitDelay = 5 * time.Second
	for _, kv := range os.Environ() {
		if !hasAnyPrefix(kv, "IDENTITY_", "AZURE_", "MSI_", "KEYGATE_", "NODE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("node keyvault.mjs %s: %v", strings.Join(scenarios, " "), time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("node keyvault.mjs %s: %v\n%s", strings.Join(scenarios, " "), err, stderr.String())
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("node printed %q: %v", stdout.String(), err)
	}
	return out
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// jsSecretEnv is the environment of a Node client signing in as the
// vault's administrator with ClientSecretCredential.
func (tv *testVault) jsSecretEnv() []string {
	return []string{
		"NODE_EXTRA_CA_CERTS=" + tv.creds.CAFile,
		"KEYGATE_VAULT_URL=" + tv.srv.URL(),
		"KEYGATE_CREDENTIAL=secret",
		"KEYGATE_TENANT_ID=" + tv.creds.TenantID,
		"KEYGATE_CLIENT_ID=" + tv.creds.ClientID,
		"KEYGATE_CLIENT_SECRET=" + tv.creds.ClientSecret,
		"KEYGATE_AUTHORITY_HOST=" + tv.srv.AuthorityHost(),
	}
}

// decodeJS decodes one scenario's results.
func decodeJS(t *testing.T, out map[string]json.RawMessage, scenario string, v any) {
	t.Helper()
	raw, ok := out[scenario]
	if !ok {
		t.Fatalf("no results for scenario %s", scenario)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("results of %s: %v", scenario, err)
	}
}

// jsError is an HTTP error the client expected: its status and Key Vault
// error code.
type jsError struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// randomText returns n characters of base64 from random bytes.
func randomText(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)[:n]
}

func isVersion(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// sortedCopy returns a sorted copy of s.
func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
