package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/gateway/gwtest"
)

// TestVaultSnapshot backs up a running server with the CLI, writes more,
// restores the snapshot in place of the database, and finds the server as
// it was at the snapshot: no later write, nothing lost, no plaintext in
// the file.
func TestVaultSnapshot(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	addr := fmt.Sprintf("127.0.0.1:%d", gwtest.FreePort(t, "127.0.0.1"))
	stop := serveAt(t, data, addr)
	creds := "--credentials=" + filepath.Join(data, "admin.json")
	mustRun(t, "secret", "set", creds, "--name", "kept", "--value", "snapshot-plaintext-6d2e")

	out := filepath.Join(t.TempDir(), "backup.db")
	if got := mustRun(t, "vault", "snapshot", creds, "--out", out); !strings.Contains(got, "checked snapshot") {
		t.Errorf("snapshot printed %q", got)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot file mode %#o, want 0600", fi.Mode().Perm())
	}
	if bytes.Contains(b, []byte("snapshot-plaintext-6d2e")) {
		t.Error("the snapshot holds a secret value in plaintext")
	}
	mustRun(t, "secret", "set", creds, "--name", "later", "--value", "after the snapshot")

	// Refused: no file named, a file that exists. Neither is touched.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"vault", "snapshot", creds}, "--out: name the file"},
		{[]string{"vault", "snapshot", creds, "--out", out}, "exists"},
	} {
		if _, err := run(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(again, b) {
		t.Error("a refused snapshot changed the existing file")
	}

	// Restore: stop, put the snapshot in place, start again.
	stop()
	if err := os.WriteFile(filepath.Join(data, "vault.db"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	serveAt(t, data, addr)
	if got := mustRun(t, "secret", "show", creds, "--name", "kept"); !strings.Contains(got, "snapshot-plaintext-6d2e") {
		t.Errorf("after the restore, kept reads %s", got)
	}
	if _, err := run(t, "secret", "show", creds, "--name", "later"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("after the restore, a secret written after the snapshot: %v, want 404", err)
	}
}
