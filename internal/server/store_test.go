package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/manage"
	"github.com/keygate/keygate/internal/seal"
	"github.com/keygate/keygate/internal/server"
	"github.com/keygate/keygate/internal/store/postgres/pgtest"
)

// storeEnv selects the store the package's tests run on: unset for the
// embedded store, "postgres" for PostgreSQL (scripts/test.sh runs the
// package both ways).
const storeEnv = "KEYGATE_TEST_STORE"

func usePostgres() bool { return os.Getenv(storeEnv) == "postgres" }

var (
	storeURLsMu sync.Mutex
	storeURLs   = map[string]string{} // data folder -> its schema's URL
)

// testStoreURL is the store URL of a vault whose data folder is dir: empty
// for the embedded store, or, on PostgreSQL, a schema of dir's own, so
// that a restart with the same folder finds the same records.
func testStoreURL(t testing.TB, dir string) string {
	t.Helper()
	if !usePostgres() {
		return ""
	}
	storeURLsMu.Lock()
	defer storeURLsMu.Unlock()
	if u, ok := storeURLs[dir]; ok {
		return u
	}
	u := pgtest.URL(t)
	storeURLs[dir] = u
	return u
}

// requireBolt skips a test that reads the embedded database file when the
// package runs on PostgreSQL, naming the test that covers the same ground
// there.
func requireBolt(t *testing.T, counterpart string) {
	t.Helper()
	if usePostgres() {
		t.Skipf("reads the embedded database file; on PostgreSQL %s checks the same", counterpart)
	}
}

func requirePostgres(t *testing.T) {
	t.Helper()
	if !usePostgres() {
		t.Skipf("runs on PostgreSQL only: scripts/test.sh runs this package again with %s=postgres", storeEnv)
	}
}

// TestPostgresHoldsNoPlaintext reads every row the vault wrote to
// PostgreSQL and finds neither the secret values nor the administrator's
// client secret nor the master key.
func TestPostgresHoldsNoPlaintext(t *testing.T) {
	requirePostgres(t)
	dir := filepath.Join(t.TempDir(), "data")
	tv := startVault(t, dir)
	markers := []string{"PLAINTEXT-MARKER-ONE", "plaintext-marker-two-" + strings.Repeat("z", 100)}
	for i, m := range markers {
		if _, err := tv.secrets.SetSecret(ctxT(t), fmt.Sprint("m", i), azsecrets.SetSecretParameters{Value: to.Ptr(m)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	tv.stop()

	dump := dumpRows(t, testStoreURL(t, dir))
	if len(dump) == 0 {
		t.Fatal("the vault wrote nothing to PostgreSQL")
	}
	key := strings.TrimSpace(string(mustReadFile(t, filepath.Join(dir, "master.key"))))
	for _, m := range append(markers, tv.creds.ClientSecret, key) {
		if bytes.Contains(dump, []byte(m)) {
			t.Errorf("PostgreSQL holds secret material in plaintext (%d bytes)", len(m))
		}
	}
}

// dumpRows returns every bucket, key and value of the store at url.
func dumpRows(t *testing.T, url string) []byte {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT bucket, key, value FROM keygate_kv`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out bytes.Buffer
	for rows.Next() {
		var bucket string
		var key, value []byte
		if err := rows.Scan(&bucket, &key, &value); err != nil {
			t.Fatal(err)
		}
		out.WriteString(bucket)
		out.Write(key)
		out.Write(value)
	}
	return out.Bytes()
}

// TestPostgresStartupRefusesWrongKey starts a second vault on a database
// that another one created: with another master key, or with none, it
// refuses to start and says why.
func TestPostgresStartupRefusesWrongKey(t *testing.T) {
	requirePostgres(t)
	first := filepath.Join(t.TempDir(), "data")
	tv := startVault(t, first)
	if _, err := tv.secrets.SetSecret(ctxT(t), "shared", azsecrets.SetSecretParameters{Value: to.Ptr("v1")}, nil); err != nil {
		t.Fatal(err)
	}
	tv.stop()
	url := testStoreURL(t, first)

	otherKey, _ := seal.GenerateKey()
	cases := []struct {
		name string
		cfg  server.Config
		want string
	}{
		{"another master key", server.Config{MasterKey: otherKey.Encode()}, "does not match"},
		{"no master key", server.Config{}, "is missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			cfg.Listen = "127.0.0.1:0"
			cfg.StoreURL = url
			wantStartRefused(t, cfg, tc.want)
		})
	}

	// With the first vault's key (and its administrator's credentials,
	// which only the first start writes), a second replica starts and
	// serves what the first stored.
	key := strings.TrimSpace(string(mustReadFile(t, filepath.Join(first, "master.key"))))
	replica := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(replica, 0o700); err != nil {
		t.Fatal(err)
	}
	admin := mustReadFile(t, filepath.Join(first, "admin.json"))
	if err := os.WriteFile(filepath.Join(replica, "admin.json"), admin, 0o600); err != nil {
		t.Fatal(err)
	}
	tv2 := startVault(t, replica, func(c *server.Config) { c.StoreURL, c.MasterKey = url, key })
	got, err := tv2.secrets.GetSecret(ctxT(t), "shared", "", nil)
	if err != nil || *got.Value != "v1" {
		t.Fatalf("replica GetSecret = %v, %v; want v1", got.Value, err)
	}
}

// TestPostgresOutageAnswers503 stops the vault's database under it: reads
// and writes answer 503 (which the SDK retries) rather than wrong data,
// and once the database is back the vault serves again by itself, with
// nothing lost.
func TestPostgresOutageAnswers503(t *testing.T) {
	requirePostgres(t)
	pg := pgtest.NewServer(t)
	tv := startVault(t, "", func(c *server.Config) { c.StoreURL = pg.URL; c.OpsListen = "127.0.0.1:0" })
	if _, err := tv.secrets.SetSecret(ctxT(t), "kept", azsecrets.SetSecretParameters{Value: to.Ptr("v1")}, nil); err != nil {
		t.Fatal(err)
	}
	token := tv.adminToken() // the authority needs the database too
	if st, _ := tv.ops(t, "/readyz"); st != http.StatusOK {
		t.Errorf("/readyz with the database up: %d, want 200", st)
	}

	pg.Stop()
	if st, _ := tv.ops(t, "/readyz"); st != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the database down: %d, want 503", st)
	}
	for _, req := range []struct{ method, path, body string }{
		{http.MethodGet, "/secrets/kept/", ""},
		{http.MethodPut, "/secrets/new", `{"value":"v"}`},
	} {
		resp, body := tv.do(req.method, req.path+"?api-version=7.5", token, req.body)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s %s with the database down: %d %s, want 503", req.method, req.path, resp.StatusCode, body)
		}
	}

	pg.Start()
	var status int
	for range 100 {
		resp, _ := tv.do(http.MethodGet, "/secrets/kept/?api-version=7.5", token, "")
		if status = resp.StatusCode; status == http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status != http.StatusOK {
		t.Fatalf("GET after the database returned: %d, want 200", status)
	}
	if st, _ := tv.ops(t, "/readyz"); st != http.StatusOK {
		t.Errorf("/readyz after the database returned: %d, want 200", st)
	}
	got, err := tv.secrets.GetSecret(ctxT(t), "kept", "", nil)
	if err != nil || *got.Value != "v1" {
		t.Fatalf("GetSecret after the outage = %v, %v; want v1", got.Value, err)
	}
	if _, err := tv.secrets.GetSecret(ctxT(t), "new", "", nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("the write refused during the outage exists afterwards: %v", err)
	}
}

// TestSnapshotEndpoint takes a snapshot through the management API: the
// embedded store answers with a copy of the stated length that holds no
// secret value in plaintext; PostgreSQL refuses with 501, pointing at its
// own tools. Either way the call is audited.
func TestSnapshotEndpoint(t *testing.T) {
	tv := startVault(t, "")
	if _, err := tv.secrets.SetSecret(ctxT(t), "snap", azsecrets.SetSecretParameters{Value: to.Ptr("snapshot-endpoint-plaintext")}, nil); err != nil {
		t.Fatal(err)
	}
	token, err := tv.creds.Token(ctxT(t), tv.http, manage.Audience+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	resp, body := tv.do(http.MethodGet, "/management/snapshot", token, "")
	if usePostgres() {
		if resp.StatusCode != http.StatusNotImplemented || !strings.Contains(body, "pg_dump") {
			t.Errorf("snapshot on PostgreSQL: %d %s, want 501 naming pg_dump", resp.StatusCode, body)
		}
	} else {
		if resp.StatusCode != http.StatusOK || int64(len(body)) != resp.ContentLength || len(body) < 4096 {
			t.Errorf("snapshot: %d, %d bytes of %d announced", resp.StatusCode, len(body), resp.ContentLength)
		}
		if strings.Contains(body, "snapshot-endpoint-plaintext") {
			t.Error("the snapshot holds a secret value in plaintext")
		}
	}
	tv.mustFindAudit("the snapshot", func(r audit.Record) bool {
		return r.Operation == "ServerSnapshot" && r.Status == resp.StatusCode
	})

	// Not for anyone but an administrator.
	resp, _ = tv.do(http.MethodGet, "/management/snapshot", tv.adminToken(), "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("snapshot with a data-plane token: %d, want 401", resp.StatusCode)
	}
}
