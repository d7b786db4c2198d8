package server_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/internal/client"
	"github.com/keygate/keygate/internal/seal"
	"github.com/keygate/keygate/internal/server"
	"github.com/keygate/keygate/internal/store/postgres/pgtest"
)

// childDirEnv makes the test binary act as a vault server process, for the
// crash test to kill.
const childDirEnv = "KEYGATE_TEST_CHILD_DIR"

// childStoreEnv carries the store URL to the child, when not the embedded
// store; childURLEnv its public URL, for replicas behind one address.
const (
	childStoreEnv = "KEYGATE_TEST_CHILD_STORE"
	childURLEnv   = "KEYGATE_TEST_CHILD_URL"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		runChild(dir)
		return
	}
	if cfg := os.Getenv(miClientEnv); cfg != "" {
		runMIClient(cfg)
		return
	}
	if usePostgres() {
		pgtest.Main(m)
		return
	}
	os.Exit(m.Run())
}

// runChild serves a vault from dir and, once it is ready, writes its URL
// to dir/../url and its listening address to dir/../addr; it runs until
// killed. The master key comes from server.MasterKeyEnv when set.
func runChild(dir string) {
	srv := server.New(server.Config{DataDir: dir, Listen: "127.0.0.1:0",
		StoreURL: os.Getenv(childStoreEnv), PublicURL: os.Getenv(childURLEnv),
		MasterKey: os.Getenv(server.MasterKeyEnv),
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, nil))})
	ctx := context.Background()
	if err := srv.Open(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	os.WriteFile(filepath.Join(filepath.Dir(dir), "addr"), []byte(srv.Addr()), 0o600)
	os.WriteFile(filepath.Join(filepath.Dir(dir), "url"), []byte(srv.URL()), 0o600)
	srv.Serve(ctx)
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	tv := startVault(t, dir)
	ctx := ctxT(t)
	for i := range 5 {
		for j := range 3 {
			if _, err := tv.secrets.SetSecret(ctx, fmt.Sprint("s", i), azsecrets.SetSecretParameters{
				Value: to.Ptr(fmt.Sprintf("value-%d-%d", i, j)), Tags: map[string]*string{"j": to.Ptr(fmt.Sprint(j))},
			}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := tv.secrets.DeleteSecret(ctx, "s4", nil); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, tv)
	tv.stop()

	tv2 := startVault(t, dir)
	if diff := cmp.Diff(before, snapshot(t, tv2)); diff != "" {
		t.Errorf("after restart (-before +after):\n%s", diff)
	}
}

func TestDatabaseHoldsNoPlaintext(t *testing.T) {
	requireBolt(t, "TestPostgresHoldsNoPlaintext")
	dir := filepath.Join(t.TempDir(), "data")
	tv := startVault(t, dir)
	ctx := ctxT(t)
	markers := []string{"PLAINTEXT-MARKER-ONE", "plaintext-marker-two-" + strings.Repeat("z", 100)}
	for i, m := range markers {
		if _, err := tv.secrets.SetSecret(ctx, fmt.Sprint("m", i), azsecrets.SetSecretParameters{Value: to.Ptr(m)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	tv.stop()

	db := mustReadFile(t, filepath.Join(dir, "vault.db"))
	for _, m := range append(markers, tv.creds.ClientSecret) {
		if bytes.Contains(db, []byte(m)) {
			t.Errorf("database holds a stored secret in plaintext (%d bytes)", len(m))
		}
	}
	key := strings.TrimSpace(string(mustReadFile(t, filepath.Join(dir, "master.key"))))
	if bytes.Contains(db, []byte(key)) {
		t.Errorf("database holds the master key")
	}
}

func TestStartupRefusesUnsafeState(t *testing.T) {
	requireBolt(t, "TestPostgresStartupRefusesWrongKey")
	// A vault that has started once, then stopped.
	base := filepath.Join(t.TempDir(), "data")
	startVault(t, base).stop()

	otherKey, _ := seal.GenerateKey()
	cases := []struct {
		name  string
		setup func(dir string) server.Config
		want  string
	}{
		{"wrong master key", func(dir string) server.Config {
			return server.Config{DataDir: dir, MasterKey: otherKey.Encode()}
		}, "does not match"},
		{"missing master key", func(dir string) server.Config {
			os.Remove(filepath.Join(dir, "master.key"))
			return server.Config{DataDir: dir}
		}, "is missing"},
		{"key file open to others", func(dir string) server.Config {
			os.Chmod(filepath.Join(dir, "master.key"), 0o644)
			return server.Config{DataDir: dir}
		}, "chmod 600"},
		{"data folder open to others", func(dir string) server.Config {
			os.Chmod(dir, 0o755)
			return server.Config{DataDir: dir}
		}, "chmod 700"},
		{"truncated database", func(dir string) server.Config {
			db := filepath.Join(dir, "vault.db")
			b, _ := os.ReadFile(db)
			os.WriteFile(db, b[:8192], 0o600)
			return server.Config{DataDir: dir}
		}, "damaged"},
		{"garbage database", func(dir string) server.Config {
			os.WriteFile(filepath.Join(dir, "vault.db"), bytes.Repeat([]byte("garbage!"), 4096), 0o600)
			return server.Config{DataDir: dir}
		}, "damaged"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.CopyFS(dir, os.DirFS(base)); err != nil {
				t.Fatal(err)
			}
			os.Chmod(dir, 0o700)
			os.Chmod(filepath.Join(dir, "master.key"), 0o600)
			cfg := tc.setup(dir)
			cfg.Listen = "127.0.0.1:0"
			wantStartRefused(t, cfg, tc.want)
		})
	}
}

// wantStartRefused checks that a server with cfg refuses to start with an
// error that says want.
func wantStartRefused(t *testing.T, cfg server.Config, want string) {
	t.Helper()
	srv := server.New(cfg)
	err := srv.Open(ctxT(t))
	if err == nil {
		srv.Close()
		t.Fatal("server started")
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

// TestShutdownWhileStarting asks a vault to stop before it has opened: Run
// returns no error and leaves nothing open, so the next start on the same
// data succeeds.
func TestShutdownWhileStarting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	startVault(t, dir).stop()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := server.Config{DataDir: dir, Listen: "127.0.0.1:0", StoreURL: testStoreURL(t, dir)}
	if err := server.New(cfg).Run(ctx); err != nil {
		t.Fatalf("Run after a shutdown asked while starting: %v, want nil", err)
	}

	tv := startVault(t, dir)
	if _, err := tv.secrets.GetSecret(ctxT(t), "absent", "", nil); statusOf(err) != 404 {
		t.Fatalf("the vault started after the early shutdown does not answer: %v", err)
	}
}

func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills a server process; skipped in -short mode")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childDirEnv+"="+dir, childStoreEnv+"="+testStoreURL(t, dir))
	var stderr bytes.Buffer
	child.Stderr = &stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	url := waitForFile(t, filepath.Join(root, "url"), &stderr)

	// Writers keep setting secrets until the process is killed under them;
	// every write the SDK saw acknowledged is recorded.
	creds, err := client.Load(filepath.Join(dir, "admin.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := creds.Secrets(url)
	if err != nil {
		t.Fatal(err)
	}
	acked := writeUntilKilled(t, c, child)

	tv2 := startVault(t, dir)
	t.Logf("%d writes acknowledged before the kill", len(acked))
	for key, want := range acked {
		name, version, _ := strings.Cut(key, "/")
		got, err := tv2.secrets.GetSecret(ctxT(t), name, version, nil)
		if err != nil {
			t.Errorf("acknowledged write %s lost: %v", key, err)
			continue
		}
		if *got.Value != want {
			t.Errorf("%s = %q, want %q", key, *got.Value, want)
		}
	}
}

func waitForFile(t *testing.T, path string, stderr *bytes.Buffer) string {
	t.Helper()
	for range 600 {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return string(b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("child server did not start: %s", stderr)
	return ""
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 400 {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("condition not met in 20s")
}
