package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/postgres"
	"github.com/keygate/keygate/internal/store/postgres/pgtest"
	"github.com/keygate/keygate/internal/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, pgtest.URL(t)) })
}

// TestConcurrentOpenMigratesOnce opens one empty database from several
// stores at once, as replicas starting together do: every Open succeeds
// and the schema is applied once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	url := pgtest.URL(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), url, postgres.Options{})
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Open: %v", err)
	}

	s := open(t, url)
	defer s.Close()
	var versions int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM keygate_schema`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != 1 {
		t.Errorf("keygate_schema has %d rows after concurrent opens, want 1", versions)
	}
}

// TestNewerSchemaRefused checks that a binary does not write to a schema
// newer than it knows.
func TestNewerSchemaRefused(t *testing.T) {
	url := pgtest.URL(t)
	open(t, url).Close()
	pgtest.Exec(t, url, `INSERT INTO keygate_schema (version) VALUES (999)`)
	_, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err == nil || !strings.Contains(err.Error(), "newer than this keygate") {
		t.Fatalf("Open of a newer schema: %v, want a refusal naming the version", err)
	}
}

// TestUnreachableIsUnavailable checks that a database that cannot be
// reached is reported as store.ErrUnavailable (the vault answers 503) and
// that the password in the URL is in no error.
func TestUnreachableIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens there, so the dial is refused.
	const url = "postgres://keygate:hunter2-password@127.0.0.1:1/keygate?sslmode=disable&connect_timeout=2"
	s, err := postgres.Open(ctx, url, postgres.Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of an unreachable database succeeded")
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open error = %v, want it to wrap store.ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Open error carries the password: %v", err)
	}
}

func TestMalformedURLHidesPassword(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://u:hunter2-password@127.0.0.1:bad-port/db", postgres.Options{})
	if err == nil {
		t.Fatal("Open of a malformed URL succeeded")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error carries the password: %v", err)
	}
}

// TestLostConnectionIsUnavailable ends the store's connections from the
// server side, as a database restart does: the transaction in progress
// fails with store.ErrUnavailable, and the next one, on a new connection,
// succeeds by itself.
func TestLostConnectionIsUnavailable(t *testing.T) {
	// The store's connections carry a name of their own, so the test ends
	// only them on a server other tests may share.
	url := pgtest.URL(t) + "&application_name=keygate-lost-connection-test"
	s := open(t, url)
	defer s.Close()
	put := func(v string) error {
		return s.Update(t.Context(), func(tx store.Tx) error { return tx.Put("b", "k", []byte(v)) })
	}
	if err := put("1"); err != nil {
		t.Fatal(err)
	}

	err := s.View(t.Context(), func(tx store.Tx) error {
		if _, err := tx.Get("b", "k"); err != nil {
			return err
		}
		pgtest.Exec(t, pgtest.SharedURL(t),
			`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			 WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
			 AND application_name = 'keygate-lost-connection-test'`)
		_, err := tx.Get("b", "k")
		return err
	})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("read on a terminated connection: %v, want store.ErrUnavailable", err)
	}

	// The pool drops broken connections; new transactions recover.
	var lastErr error
	for range 20 {
		if lastErr = put("2"); lastErr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("write after the connections were ended: %v", lastErr)
	}
}

// TestConflictingUpdatesRetry runs read-modify-write Updates of one key
// from two stores (two replicas) at once; SERIALIZABLE conflicts are
// retried, so no increment is lost.
func TestConflictingUpdatesRetry(t *testing.T) {
	url := pgtest.URL(t)
	a, b := open(t, url), open(t, url)
	defer a.Close()
	defer b.Close()
	const perStore = 40
	var wg sync.WaitGroup
	for _, s := range []*postgres.Store{a, b} {
		for range 4 {
			wg.Go(func() {
				for range perStore / 4 {
					if err := increment(t.Context(), s); err != nil {
						t.Errorf("increment: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	var got string
	a.View(t.Context(), func(tx store.Tx) error {
		v, err := tx.Get("counter", "n")
		got = string(v)
		return err
	})
	if want := fmt.Sprint(2 * perStore); got != want {
		t.Errorf("counter after %d increments = %s", 2*perStore, got)
	}
}

func increment(ctx context.Context, s store.Store) error {
	return s.Update(ctx, bump)
}
