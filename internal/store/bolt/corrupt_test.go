package bolt_test

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/bolt"
)

// fixture is a valid database file and where some of its pages are.
type fixture struct {
	path     string
	pageSize int64
	pages    int64 // pages in use (the high-water mark)
	freelist int64
	root     int64 // the leaf page listing the buckets
	leaf     int64 // a leaf page of the big bucket
	branch   int64 // the root branch page of the big bucket
}

// makeFixture writes a database big enough to have branch pages (2000
// records of 200 bytes in "secrets") and a small inline bucket ("meta").
func makeFixture(t *testing.T) fixture {
	t.Helper()
	path := dbPath(t)
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	value := make([]byte, 200)
	err = s.Update(t.Context(), func(tx store.Tx) error {
		for i := range 2000 {
			rand.Read(value)
			if err := tx.Put("secrets", fmt.Sprintf("secret/%05d", i), value); err != nil {
				return err
			}
		}
		return tx.Put("meta", "version", []byte("1"))
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	// Small commits after the big one reuse the pages it freed, which
	// moves the freelist from the end of the file to its start.
	for i := range 3 {
		err = s.Update(t.Context(), func(tx store.Tx) error {
			return tx.Put("meta", "generation", []byte{byte(i)})
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return locatePages(t, path)
}

// locatePages finds the freelist, a leaf and a branch page of the file.
func locatePages(t *testing.T, path string) fixture {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatalf("bbolt.Open: %v", err)
	}
	defer db.Close()
	f := fixture{path: path, pageSize: int64(db.Info().PageSize)}
	branches := map[int64]bool{}
	err = db.View(func(tx *bbolt.Tx) error {
		f.pages = tx.Size() / f.pageSize
		f.branch = int64(tx.Bucket([]byte("secrets")).Root())
		f.root = int64(tx.Cursor().Bucket().Root())
		for id := int64(2); id < f.pages; id++ {
			info, err := tx.Page(int(id))
			if err != nil || info == nil {
				return fmt.Errorf("page %d: %v", id, err)
			}
			switch info.Type {
			case "branch":
				branches[id] = true
			case "freelist":
				f.freelist = id
			case "leaf":
				if id != f.root {
					f.leaf = id
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("locating pages: %v", err)
	}
	if f.freelist == 0 || f.leaf == 0 || f.root == 0 || !branches[f.branch] {
		t.Fatalf("fixture lacks a page type: %+v", f)
	}
	if f.freelist >= f.pages/2 {
		t.Fatalf("freelist is page %d of %d, want it in the first half", f.freelist, f.pages)
	}
	return f
}

// copyFile copies the fixture to a new temporary directory.
func copyFile(t *testing.T, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := dbPath(t)
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

// writeAt overwrites the file at path from offset off.
func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(n int64) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestOpenCorrupt(t *testing.T) {
	fx := makeFixture(t)
	ps := fx.pageSize
	// A leaf element follows the 16-byte page header: flags, pos, ksize,
	// vsize, 4 bytes each. A branch element: pos, ksize, then the pgid.
	const elem = 16
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"random bytes", func(t *testing.T, path string) {
			os.WriteFile(path, randomBytes(64<<10), 0o600)
		}},
		{"text file", func(t *testing.T, path string) {
			os.WriteFile(path, []byte("this is not a database\n"), 0o600)
		}},
		{"truncated to half", func(t *testing.T, path string) {
			os.Truncate(path, fx.pages*ps/2)
		}},
		{"truncated by one page", func(t *testing.T, path string) {
			os.Truncate(path, (fx.pages-1)*ps)
		}},
		{"truncated before the freelist", func(t *testing.T, path string) {
			// bbolt reads the freelist while opening, past the end of
			// the file: a bus error, which Open must survive.
			os.Truncate(path, fx.freelist*ps)
		}},
		{"both meta pages garbage", func(t *testing.T, path string) {
			writeAt(t, path, 0, randomBytes(2*ps))
		}},
		{"freelist page garbage", func(t *testing.T, path string) {
			writeAt(t, path, fx.freelist*ps, randomBytes(ps))
		}},
		{"freelist lists a page in use", func(t *testing.T, path string) {
			// The freelist's count sits at byte 10 of its page header; its
			// page IDs follow the header. Only bbolt's check sees this.
			header := fx.freelist * ps
			writeAt(t, path, header+10, binary.LittleEndian.AppendUint16(nil, 1))
			writeAt(t, path, header+16, binary.LittleEndian.AppendUint64(nil, uint64(fx.leaf)))
		}},
		{"leaf page garbage", func(t *testing.T, path string) {
			writeAt(t, path, fx.leaf*ps, randomBytes(ps))
		}},
		{"branch page garbage", func(t *testing.T, path string) {
			writeAt(t, path, fx.branch*ps, randomBytes(ps))
		}},
		{"record offset outside the file", func(t *testing.T, path string) {
			writeAt(t, path, fx.leaf*ps+elem+4, binary.LittleEndian.AppendUint32(nil, 0x7FFF0000))
		}},
		{"bucket name offset outside the file", func(t *testing.T, path string) {
			writeAt(t, path, fx.root*ps+elem+4, binary.LittleEndian.AppendUint32(nil, 0x7FFF0000))
		}},
		{"branch child past the pages in use", func(t *testing.T, path string) {
			pgid := uint64(fx.pages + 64) // mapped, but not a page in use
			writeAt(t, path, fx.branch*ps+elem+8, binary.LittleEndian.AppendUint64(nil, pgid))
		}},
		{"branch child outside the map", func(t *testing.T, path string) {
			writeAt(t, path, fx.branch*ps+elem+8, binary.LittleEndian.AppendUint64(nil, 1<<30))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := copyFile(t, fx.path)
			tt.damage(t, path)
			for _, attempt := range []string{"first", "second"} {
				s, err := bolt.Open(path, bolt.Options{})
				if err == nil {
					s.Close()
					t.Fatalf("%s Open of a damaged file succeeded", attempt)
				}
				// The second attempt shows that the failed first one let
				// go of the file (its lock) even when bbolt panicked.
				t.Logf("%s Open: %v", attempt, err)
				if !errors.Is(err, bolt.ErrCorrupt) {
					t.Fatalf("%s Open error = %v, want ErrCorrupt", attempt, err)
				}
				for _, want := range []string{path, "damaged", "restore the file from a backup"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
			}
		})
	}
}

func TestOpenFixtureIntact(t *testing.T) {
	fx := makeFixture(t)
	s := mustOpen(t, copyFile(t, fx.path))
	n := 0
	err := s.View(t.Context(), func(tx store.Tx) error {
		return tx.Scan("secrets", "", "", func(string, []byte) bool { n++; return true })
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	if n != 2000 {
		t.Errorf("intact fixture holds %d records, want 2000", n)
	}
}

func TestOpenEmptyFile(t *testing.T) {
	// A zero-length file is what a crash right after creating the file
	// leaves; bbolt initializes it like a new one.
	path := filepath.Join(t.TempDir(), "keygate.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, path)
	if err := s.Update(t.Context(), func(tx store.Tx) error { return tx.Put("b", "k", []byte("v")) }); err != nil {
		t.Errorf("Update on a database made from an empty file: %v", err)
	}
}
