package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/internal/store"
)

// TestSnapshotWhileWriting copies a database while writers commit: the
// copy announces its size, opens and passes Open's checks, and holds
// every record committed before it began and no half of a later
// transaction (each transaction writes a pair of records).
func TestSnapshotWhileWriting(t *testing.T) {
	s := mustOpen(t, dbPath(t))
	put := func(i int) error {
		return s.Update(t.Context(), func(tx store.Tx) error {
			k := fmt.Sprintf("%06d", i)
			if err := tx.Put("a", k, bytes.Repeat([]byte("x"), 200)); err != nil {
				return err
			}
			return tx.Put("b", k, []byte("pair"))
		})
	}
	for i := range 500 {
		if err := put(i); err != nil {
			t.Fatal(err)
		}
	}

	var (
		stop atomic.Bool
		wg   sync.WaitGroup
		n    atomic.Int64
	)
	n.Store(500)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				if err := put(int(n.Add(1))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var buf bytes.Buffer
	var announced int64
	err := s.Snapshot(t.Context(), func(size int64) io.Writer { announced = size; return &buf })
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if announced != int64(buf.Len()) {
		t.Errorf("announced %d bytes, wrote %d", announced, buf.Len())
	}

	path := dbPath(t)
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	copied := mustOpen(t, path)
	count := map[string]int{}
	err = copied.View(t.Context(), func(tx store.Tx) error {
		for _, b := range []string{"a", "b"} {
			if err := tx.Scan(b, "", "", func(string, []byte) bool { count[b]++; return true }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count["a"] < 500 || count["a"] != count["b"] {
		t.Errorf("the copy holds %d and %d records of the pairs, want at least 500 each and as many of both", count["a"], count["b"])
	}
}

// TestSnapshotCancelled refuses to start once the context is done.
func TestSnapshotCancelled(t *testing.T) {
	s := mustOpen(t, dbPath(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	began := false
	err := s.Snapshot(ctx, func(int64) io.Writer { began = true; return io.Discard })
	if err == nil || began {
		t.Errorf("Snapshot with a done context: began=%v err=%v, want an error before beginning", began, err)
	}
}
