// Package pgtest gives tests a real PostgreSQL server: the one named by
// KEYGATE_TEST_POSTGRES (scripts/test.sh starts one and sets it), or, when
// that is unset, one that Main starts with scripts/postgres.sh for the
// package's tests and stops afterwards. Each test gets a schema of its own.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable with the server's URL.
const EnvURL = "KEYGATE_TEST_POSTGRES"

// serverURL is the server the package's tests use, set by Main.
var serverURL string

// Main runs the tests of a package that uses PostgreSQL. Call it from
// TestMain. It exits the process.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	serverURL = os.Getenv(EnvURL)
	if serverURL != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "keygate-pg-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(repoRoot(), "scripts", "postgres.sh")
	out, err := exec.Command(script, "start", dir).Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: starting PostgreSQL with %s: %v\n", script, err)
		return 1
	}
	defer exec.Command(script, "stop", dir).Run()
	serverURL = strings.TrimSpace(string(out))
	return m.Run()
}

// repoRoot is the module's root, found from this file's path.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
}

// URL returns the server's URL with a new, empty schema of the test's own
// as search path, dropped when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	if serverURL == "" {
		t.Fatal("pgtest: no PostgreSQL server: call pgtest.Main from TestMain")
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	Exec(t, serverURL, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { Exec(t, serverURL, "DROP SCHEMA "+schema+" CASCADE") })
	return WithSearchPath(t, serverURL, schema)
}

// SharedURL returns the shared server's URL, without a schema of its own.
func SharedURL(t testing.TB) string {
	t.Helper()
	if serverURL == "" {
		t.Fatal("pgtest: no PostgreSQL server: call pgtest.Main from TestMain")
	}
	return serverURL
}

// WithSearchPath returns u with schema as its search path.
func WithSearchPath(t testing.TB, u, schema string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("pgtest: parsing %s: %v", EnvURL, err)
	}
	q := parsed.Query()
	q.Set("search_path", schema)
	parsed.RawQuery = q.Encode()
	return parsed.String()
}

// Exec runs sql on the server at u in a connection of its own.
func Exec(t testing.TB, u, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("pgtest: connecting: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Server is a PostgreSQL server of one test's own, which the test may stop
// and start again to see what a lost database does.
type Server struct {
	t   testing.TB
	dir string

	// URL is the server's connection URL.
	URL string
}

// NewServer starts a server for t alone, stopped when the test ends. It
// takes a few seconds: use the shared server (URL) unless the test must
// stop it.
func NewServer(t testing.TB) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "keygate-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, dir: dir}
	s.URL = s.script("start")
	t.Cleanup(func() {
		s.script("stop")
		os.RemoveAll(dir)
	})
	return s
}

// Stop stops the server, as an outage would, keeping its data.
func (s *Server) Stop() { s.t.Helper(); s.script("stop") }

// Start starts a stopped server again, on the same port with the same
// data.
func (s *Server) Start() { s.t.Helper(); s.script("start") }

func (s *Server) script(cmd string) string {
	s.t.Helper()
	script := filepath.Join(repoRoot(), "scripts", "postgres.sh")
	out, err := exec.Command(script, cmd, s.dir).Output()
	if err != nil {
		s.t.Fatalf("pgtest: %s %s: %v", script, cmd, err)
	}
	return strings.TrimSpace(string(out))
}
