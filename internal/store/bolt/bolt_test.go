package bolt_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/bolt"
	"github.com/keygate/keygate/internal/store/storetest"
)

// dbPath returns the path of a database file in a new temporary directory.
func dbPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "keygate.db")
}

// mustOpen opens path and closes the Store when the test ends.
func mustOpen(t testing.TB, path string) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := bolt.Open(dbPath(t), bolt.Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	path := dbPath(t)
	mustOpen(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("database file mode = %#o, want 0600", got)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := dbPath(t)
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	err = s.Update(t.Context(), func(tx store.Tx) error {
		return tx.Put("secrets", "a", []byte("value a"))
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = mustOpen(t, path)
	err = s.View(t.Context(), func(tx store.Tx) error {
		v, err := tx.Get("secrets", "a")
		if err != nil {
			return err
		}
		if string(v) != "value a" {
			t.Errorf("after reopening, Get = %q, want %q", v, "value a")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
}

func TestOpenLocked(t *testing.T) {
	path := dbPath(t)
	first, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}

	_, err = bolt.Open(path, bolt.Options{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, bolt.ErrLocked) {
		t.Fatalf("second Open error = %v, want ErrLocked", err)
	}
	for _, want := range []string{path, "another keygate process"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}

	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	mustOpen(t, path)
}

func TestOpenBadOptions(t *testing.T) {
	_, err := bolt.Open(dbPath(t), bolt.Options{Timeout: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "Timeout") {
		t.Errorf("Open with a negative Timeout: error %v, want one naming Timeout", err)
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "keygate.db")
	_, err := bolt.Open(path, bolt.Options{})
	if err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
	if errors.Is(err, bolt.ErrCorrupt) {
		t.Errorf("Open in a missing directory: error %v claims the file is damaged", err)
	}
}

func TestCloseTwice(t *testing.T) {
	s, err := bolt.Open(dbPath(t), bolt.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	err = s.Update(t.Context(), func(tx store.Tx) error { return tx.Put("b", "k", nil) })
	if err == nil {
		t.Error("Update after Close succeeded")
	}
}
