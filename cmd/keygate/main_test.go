package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/server"
)

// startServer runs a vault for the CLI to talk to and returns the path of
// its admin.json.
func startServer(t *testing.T) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	serveAt(t, data, "127.0.0.1:0")
	return filepath.Join(data, "admin.json")
}

// serveAt runs a vault on data at addr until stop is called, or the test
// ends.
func serveAt(t *testing.T, data, addr string) (stop func()) {
	t.Helper()
	srv := server.New(server.Config{DataDir: data, Listen: addr})
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Open(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		<-done
	})
	t.Cleanup(stop)
	return stop
}

// run runs the CLI with args and returns what it printed.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("keygate %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestSecretCommands(t *testing.T) {
	creds := "--credentials=" + startServer(t)
	backup := filepath.Join(t.TempDir(), "hello.backup")

	var set secretOut
	decode(t, mustRun(t, "secret", "set", creds, "--name", "hello", "--value", "world", "--tags", "env=dev"), &set)
	if *set.Value != "world" || set.Name != "hello" || set.Tags["env"] != "dev" || set.Attributes.Created == nil {
		t.Errorf("set printed %+v", set)
	}
	var show secretOut
	decode(t, mustRun(t, "secret", "show", creds, "--name", "hello"), &show)
	if *show.Value != "world" || show.ID != set.ID {
		t.Errorf("show printed %+v", show)
	}
	var list []secretOut
	decode(t, mustRun(t, "secret", "list", creds), &list)
	if len(list) != 1 || list[0].Name != "hello" || list[0].Value != nil {
		t.Errorf("list printed %+v", list)
	}

	mustRun(t, "secret", "backup", creds, "--name", "hello", "--file", backup)
	var del secretOut
	decode(t, mustRun(t, "secret", "delete", creds, "--name", "hello"), &del)
	if del.RecoveryID == nil || del.ScheduledPurgeDate == nil {
		t.Errorf("delete printed %+v", del)
	}
	mustRun(t, "secret", "recover", creds, "--name", "hello")
	mustRun(t, "secret", "delete", creds, "--name", "hello")
	mustRun(t, "secret", "purge", creds, "--name", "hello")
	var restored secretOut
	decode(t, mustRun(t, "secret", "restore", creds, "--file", backup), &restored)
	if restored.ID != set.ID {
		t.Errorf("restored %s, want %s", restored.ID, set.ID)
	}
}

func TestSecretSetNeedsOneValue(t *testing.T) {
	for _, args := range [][]string{
		{"secret", "set", "--name", "x"},
		{"secret", "set", "--name", "x", "--value", "v", "--file", "f"},
		{"secret", "set", "--name", "x", "--value", "v", "--tags", "=v"},
	} {
		if _, err := run(t, append(args, "--credentials=/nonexistent")...); err == nil {
			t.Errorf("keygate %v succeeded", args)
		}
	}
}

func TestVaultPolicyCommands(t *testing.T) {
	creds := "--credentials=" + startServer(t)
	const oid = "11111111-2222-3333-4444-555555555555"

	var v vaultDoc
	decode(t, mustRun(t, "vault", "set-policy", creds, "--object-id", oid, "--secret-permissions", "get,list"), &v)
	if p := findPolicy(v, oid); p == nil || strings.Join(p, ",") != "get,list" {
		t.Fatalf("after set-policy: %+v", v.Properties.AccessPolicies)
	}
	// Kinds not given keep their permissions.
	decode(t, mustRun(t, "vault", "set-policy", creds, "--object-id", oid, "--certificate-permissions", "get"), &v)
	if p := findPolicy(v, oid); strings.Join(p, ",") != "get,list" {
		t.Errorf("secret permissions after a certificate-only set-policy: %v", p)
	}
	if _, err := run(t, "vault", "set-policy", creds, "--object-id", oid, "--secret-permissions", "gett"); err == nil ||
		!strings.Contains(err.Error(), "gett") {
		t.Errorf("unknown permission: %v", err)
	}
	decode(t, mustRun(t, "vault", "delete-policy", creds, "--object-id", oid), &v)
	if findPolicy(v, oid) != nil {
		t.Errorf("policy still there after delete-policy")
	}
	decode(t, mustRun(t, "vault", "show", creds), &v)
	if v.Name != "default" || len(v.Properties.AccessPolicies) != 1 {
		t.Errorf("show printed %+v", v)
	}
}

func findPolicy(v vaultDoc, oid string) []string {
	for _, p := range v.Properties.AccessPolicies {
		if p.ObjectID == oid {
			return p.Permissions.Secrets
		}
	}
	return nil
}

func decode(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
}
