package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/client"
)

func TestIdentityCommands(t *testing.T) {
	adminFile := startServer(t)
	creds := "--credentials=" + adminFile

	var mi struct {
		Name       string `json:"name"`
		Properties struct {
			ClientID    string `json:"clientId"`
			PrincipalID string `json:"principalId"`
		} `json:"properties"`
	}
	decode(t, mustRun(t, "identity", "create", creds, "--name", "gateway"), &mi)
	if mi.Name != "gateway" || mi.Properties.ClientID == "" || mi.Properties.PrincipalID == "" {
		t.Fatalf("create printed %+v", mi)
	}
	var list []map[string]any
	decode(t, mustRun(t, "identity", "list", creds), &list)
	if len(list) != 1 {
		t.Errorf("list printed %v", list)
	}

	// The credential goes to the file, and is printed nowhere.
	credFile := filepath.Join(t.TempDir(), "credential")
	out := mustRun(t, "identity", "assign", creds, "--identity", "gateway", "--host", "web-1",
		"--credential-file", credFile, "--credential-lifetime", "24h")
	cred := strings.TrimSpace(string(mustRead(t, credFile)))
	if !strings.HasPrefix(cred, "kgh_") || strings.Contains(out, cred) {
		t.Fatalf("assign: credential %d characters, printed: %v", len(cred), strings.Contains(out, cred))
	}
	if fi, err := os.Stat(credFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("credential file mode %v, %v", fi.Mode(), err)
	}
	var e enrolment
	decode(t, out[strings.Index(out, "{"):], &e)
	if e.Authority == "" || e.Host["name"] != "web-1" {
		t.Errorf("assign printed %+v", e)
	}

	// The agent command serves the identity with that credential.
	c, err := client.Load(adminFile)
	if err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(t.TempDir(), "identity.env")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cmd := rootCommand()
		cmd.SetOut(io.Discard)
		cmd.SetArgs([]string{"identity", "agent", "--authority", e.Authority, "--host", "web-1",
			"--credential-file", credFile, "--ca-file", c.CAFile, "--listen", "127.0.0.1:0", "--env-file", envFile,
			"--log-level", "error"})
		done <- cmd.ExecuteContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent command: %v", err)
		}
	})
	endpoint, header := waitForEnv(t, envFile)
	req, _ := http.NewRequest(http.MethodGet, endpoint+"?api-version=2019-08-01&resource="+strings.TrimSuffix(c.AuthorityHost, "/"), nil)
	req.Header.Set("X-IDENTITY-HEADER", header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok map[string]string
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || tok["access_token"] == "" || tok["client_id"] != mi.Properties.ClientID {
		t.Errorf("token through the agent command: %d %v", resp.StatusCode, tok["error_description"])
	}

	// Rotation: a new credential, printed when no file is given.
	out = mustRun(t, "identity", "host", "credential", creds, "--host", "web-1")
	decode(t, out, &e)
	if e.Credential == "" || e.Credential == cred {
		t.Errorf("host credential printed no new credential")
	}
	mustRun(t, "identity", "unassign", creds, "--identity", "gateway", "--host", "web-1")
	mustRun(t, "identity", "host", "delete", creds, "--host", "web-1")
	mustRun(t, "identity", "delete", creds, "--name", "gateway")
	if _, err := run(t, "identity", "show", creds, "--name", "gateway"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("show after delete: %v", err)
	}
}

func TestVaultCommands(t *testing.T) {
	creds := "--credentials=" + startServer(t)
	var v vaultDoc
	decode(t, mustRun(t, "vault", "create", creds, "--name", "team", "--retention-days", "30"), &v)
	if v.Name != "team" || v.Properties.SoftDeleteRetentionInDays != 30 || len(v.Properties.AccessPolicies) != 1 ||
		!strings.HasPrefix(v.Properties.VaultURI, "https://team.localhost:") {
		t.Fatalf("create printed %+v", v)
	}
	var acls map[string]any
	decode(t, mustRun(t, "vault", "network-rule", "add", creds, "--name", "team", "--ip-address", "10.0.0.0/8,::1"), &acls)
	if rules := acls["ipRules"].([]any); len(rules) != 2 {
		t.Errorf("network-rule add printed %v", acls)
	}
	decode(t, mustRun(t, "vault", "update", creds, "--name", "team", "--default-action", "Deny",
		"--enabled-for-template-deployment"), &v)
	if v.Properties.NetworkACLs.DefaultAction != "Deny" || len(v.Properties.NetworkACLs.IPRules) != 2 ||
		!v.Properties.EnabledForTemplateDeployment || v.Properties.SoftDeleteRetentionInDays != 30 {
		t.Errorf("update printed %+v", v.Properties)
	}
	if _, err := run(t, "vault", "update", creds, "--name", "team", "--retention-days", "3"); err == nil ||
		!strings.Contains(err.Error(), "softDeleteRetentionInDays") {
		t.Errorf("retention of 3 days: %v", err)
	}
	decode(t, mustRun(t, "vault", "network-rule", "remove", creds, "--name", "team", "--ip-address", "::1"), &acls)
	if rules := acls["ipRules"].([]any); len(rules) != 1 {
		t.Errorf("network-rule remove printed %v", acls)
	}
	const oid = "11111111-2222-3333-4444-555555555555"
	decode(t, mustRun(t, "vault", "assign-role", creds, "--name", "team", "--object-id", oid), &v)
	if p := findPolicy(v, oid); strings.Join(p, ",") != "get" {
		t.Errorf("assign-role granted %v, want get", p)
	}
	var list []vaultDoc
	decode(t, mustRun(t, "vault", "list", creds), &list)
	if len(list) != 2 {
		t.Errorf("list printed %d vaults", len(list))
	}
	mustRun(t, "vault", "delete", creds, "--name", "team")
	decode(t, mustRun(t, "vault", "list", creds), &list)
	if len(list) != 1 || list[0].Name != "default" {
		t.Errorf("list after delete: %+v", list)
	}

	// Soft-deleted: listed, shown, recovered whole, deleted and purged.
	var deleted []deletedVaultDoc
	decode(t, mustRun(t, "vault", "deleted", "list", creds), &deleted)
	if len(deleted) != 1 || deleted[0].Name != "team" || deleted[0].Type != "Microsoft.KeyVault/deletedVaults" ||
		!deleted[0].Properties.ScheduledPurgeDate.Equal(deleted[0].Properties.DeletionDate.Add(30*24*time.Hour)) {
		t.Errorf("deleted list printed %+v", deleted)
	}
	var d deletedVaultDoc
	decode(t, mustRun(t, "vault", "deleted", "show", creds, "team"), &d)
	if d.Properties.VaultID != "/management/vaults/team" {
		t.Errorf("deleted show printed %+v", d)
	}
	if _, err := run(t, "vault", "create", creds, "--name", "team"); err == nil ||
		!strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "keygate vault recover team") {
		t.Errorf("create over a deleted vault: %v", err)
	}
	if _, err := run(t, "vault", "recover", creds); err == nil || !strings.Contains(err.Error(), "name the vault") {
		t.Errorf("recover without a name: %v", err)
	}
	decode(t, mustRun(t, "vault", "recover", creds, "team"), &v)
	if v.Name != "team" || len(v.Properties.NetworkACLs.IPRules) != 1 || findPolicy(v, oid) == nil {
		t.Errorf("recover printed %+v", v)
	}
	decode(t, mustRun(t, "vault", "update", creds, "--name", "team", "--enable-purge-protection"), &v)
	if !v.Properties.EnablePurgeProtection {
		t.Errorf("update --enable-purge-protection printed %+v", v.Properties)
	}
	mustRun(t, "vault", "delete", creds, "--name", "team")
	if _, err := run(t, "vault", "deleted", "purge", creds, "team"); err == nil || !strings.Contains(err.Error(), "purge protection") {
		t.Errorf("purge of a protected vault: %v", err)
	}
	if _, err := run(t, "vault", "deleted", "purge", creds, "nosuch"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("purge of an unknown vault: %v", err)
	}
	mustRun(t, "vault", "create", creds, "--name", "scratch")
	mustRun(t, "vault", "delete", creds, "--name", "scratch")
	mustRun(t, "vault", "deleted", "purge", creds, "--name", "scratch")
	decode(t, mustRun(t, "vault", "deleted", "list", creds), &deleted)
	if len(deleted) != 1 || deleted[0].Name != "team" {
		t.Errorf("deleted list after purging scratch: %+v", deleted)
	}
	mustRun(t, "vault", "create", creds, "--name", "scratch")
}

// deletedVaultDoc is a deleted vault as the management API returns it.
type deletedVaultDoc struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		VaultID            string    `json:"vaultId"`
		DeletionDate       time.Time `json:"deletionDate"`
		ScheduledPurgeDate time.Time `json:"scheduledPurgeDate"`
	} `json:"properties"`
}

// waitForEnv waits for an agent's environment file and returns its
// endpoint and header.
func waitForEnv(t *testing.T, path string) (endpoint, header string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if err == nil {
			for line := range strings.Lines(string(b)) {
				line = strings.TrimSpace(line)
				if v, ok := strings.CutPrefix(line, "IDENTITY_ENDPOINT="); ok {
					endpoint = v
				}
				if v, ok := strings.CutPrefix(line, "IDENTITY_HEADER="); ok {
					header = v
				}
			}
			if endpoint != "" && header != "" {
				return endpoint, header
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no environment file at %s", path)
	return "", ""
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
