// Package storetest is the conformance suite for store.Store
// implementations. Every backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/internal/store"
)

// snapshotWait bounds how long the snapshot test waits for an Update while
// a View is open, so that a backend whose writers wait for readers fails
// the test instead of hanging it.
const snapshotWait = 10 * time.Second

// Run runs the suite. open must return a new, empty Store each time it is
// called; Run calls it once per subtest and closes the Store at the end of
// the subtest (twice, since Close must be safe to repeat), so open need not
// register a Close of its own.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"PutCopiesValue", testPutCopiesValue},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"ScanOrder", testScanOrder},
		{"ScanPrefixAfter", testScanPrefixAfter},
		{"ScanStop", testScanStop},
		{"ScanMissingBucket", testScanMissingBucket},
		{"BucketsIndependent", testBucketsIndependent},
		{"UpdateErrorKeepsNothing", testUpdateErrorKeepsNothing},
		{"ViewSnapshot", testViewSnapshot},
		{"ViewRejectsWrites", testViewRejectsWrites},
		{"ViewReturnsFnError", testViewReturnsFnError},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"ContextCanceled", testContextCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				if err := s.Close(); err != nil {
					t.Errorf("second Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// put stores key=value in bucket in its own Update.
func put(t *testing.T, s store.Store, bucket, key, value string) {
	t.Helper()
	err := s.Update(t.Context(), func(tx store.Tx) error {
		return tx.Put(bucket, key, []byte(value))
	})
	if err != nil {
		t.Fatalf("Update putting %s/%s: %v", bucket, key, err)
	}
}

// get returns the value of key in bucket, read in its own View, and the
// error of Get.
func get(t *testing.T, s store.Store, bucket, key string) (string, error) {
	t.Helper()
	var (
		value  string
		getErr error
	)
	err := s.View(t.Context(), func(tx store.Tx) error {
		v, err := tx.Get(bucket, key)
		value, getErr = string(v), err
		return nil
	})
	if err != nil {
		t.Fatalf("View getting %s/%s: %v", bucket, key, err)
	}
	return value, getErr
}

// wantValue fails unless key in bucket holds want.
func wantValue(t *testing.T, s store.Store, bucket, key, want string) {
	t.Helper()
	got, err := get(t, s, bucket, key)
	if err != nil {
		t.Errorf("Get(%s, %s): %v, want %q", bucket, key, err, want)
		return
	}
	if got != want {
		t.Errorf("Get(%s, %s) = %q, want %q", bucket, key, got, want)
	}
}

// wantMissing fails unless key in bucket is absent.
func wantMissing(t *testing.T, s store.Store, bucket, key string) {
	t.Helper()
	got, err := get(t, s, bucket, key)
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(%s, %s) = %q, %v; want ErrNotFound", bucket, key, got, err)
	}
}

// scan returns the keys and values that Scan passes to fn, in order.
func scan(t *testing.T, s store.Store, bucket, prefix, after string) []string {
	t.Helper()
	var got []string
	err := s.View(t.Context(), func(tx store.Tx) error {
		return tx.Scan(bucket, prefix, after, func(k string, v []byte) bool {
			got = append(got, k+"="+string(v))
			return true
		})
	})
	if err != nil {
		t.Fatalf("Scan(%q, %q, %q): %v", bucket, prefix, after, err)
	}
	return got
}

func testGetMissing(t *testing.T, s store.Store) {
	wantMissing(t, s, "nobucket", "k")
	put(t, s, "b", "k", "v")
	wantMissing(t, s, "b", "other")
	wantMissing(t, s, "b", "k\x00")
	wantMissing(t, s, "b", "K")
}

func testPutGet(t *testing.T, s store.Store) {
	tests := []struct {
		name  string
		key   string
		value []byte
	}{
		{"text", "secret/a", []byte("hello")},
		{"empty value", "secret/empty", []byte{}},
		{"binary", "secret/bin", []byte{0, 1, 0xFF, 0, 0x80}},
		{"binary key", "k\x00\xff", []byte("v")},
		{"64 KiB", "secret/big", bytes.Repeat([]byte("0123456789abcdef"), 4096)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Update(t.Context(), func(tx store.Tx) error {
				return tx.Put("b", tt.key, tt.value)
			})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			err = s.View(t.Context(), func(tx store.Tx) error {
				got, err := tx.Get("b", tt.key)
				if err != nil {
					return err
				}
				if !bytes.Equal(got, tt.value) {
					t.Errorf("Get returned %d bytes that differ from the %d put", len(got), len(tt.value))
				}
				return nil
			})
			if err != nil {
				t.Fatalf("View: %v", err)
			}
		})
	}
}

func testPutCopiesValue(t *testing.T, s store.Store) {
	value := []byte("original")
	err := s.Update(t.Context(), func(tx store.Tx) error {
		if err := tx.Put("b", "k", value); err != nil {
			return err
		}
		// The store must not see this, inside the transaction or after.
		copy(value, "MUTATED!")
		got, err := tx.Get("b", "k")
		if err != nil {
			return err
		}
		if string(got) != "original" {
			t.Errorf("Get in the same Update after the caller changed its slice = %q, want %q", got, "original")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	copy(value, "CHANGED!")
	wantValue(t, s, "b", "k", "original")
}

func testOverwrite(t *testing.T, s store.Store) {
	put(t, s, "b", "k", "first value, longer")
	put(t, s, "b", "k", "second")
	wantValue(t, s, "b", "k", "second")
	if diff := cmp.Diff([]string{"k=second"}, scan(t, s, "b", "", "")); diff != "" {
		t.Errorf("Scan after overwrite (-want +got):\n%s", diff)
	}
}

func testDelete(t *testing.T, s store.Store) {
	put(t, s, "b", "a", "1")
	put(t, s, "b", "k", "2")
	err := s.Update(t.Context(), func(tx store.Tx) error {
		if err := tx.Delete("b", "k"); err != nil {
			return fmt.Errorf("deleting present key: %w", err)
		}
		if err := tx.Delete("b", "absent"); err != nil {
			return fmt.Errorf("deleting absent key: %w", err)
		}
		if err := tx.Delete("nobucket", "k"); err != nil {
			return fmt.Errorf("deleting from absent bucket: %w", err)
		}
		if _, err := tx.Get("b", "k"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("getting a key deleted in the same Update: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	wantMissing(t, s, "b", "k")
	wantValue(t, s, "b", "a", "1")
}

func testScanOrder(t *testing.T, s store.Store) {
	// Put in an order unlike the sorted one; byte order puts upper case
	// before lower case and a key before its extensions.
	keys := []string{"b", "a\xff", "B", "a", "ab", "a\x00", "\x01", "Z", "aa"}
	err := s.Update(t.Context(), func(tx store.Tx) error {
		for _, k := range keys {
			if err := tx.Put("b", k, []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	want := []string{
		"\x01=v\x01", "B=vB", "Z=vZ", "a=va", "a\x00=va\x00",
		"aa=vaa", "ab=vab", "a\xff=va\xff", "b=vb",
	}
	if diff := cmp.Diff(want, scan(t, s, "b", "", "")); diff != "" {
		t.Errorf("Scan of all keys (-want +got):\n%s", diff)
	}
}

func testScanPrefixAfter(t *testing.T, s store.Store) {
	for _, k := range []string{"a", "b/1", "b/2", "b/3", "b/30", "b0", "c/1"} {
		put(t, s, "b", k, k)
	}
	tests := []struct {
		name          string
		prefix, after string
		want          []string // keys; the values equal them
	}{
		{"all", "", "", []string{"a", "b/1", "b/2", "b/3", "b/30", "b0", "c/1"}},
		{"prefix", "b/", "", []string{"b/1", "b/2", "b/3", "b/30"}},
		{"prefix is a key", "b/3", "", []string{"b/3", "b/30"}},
		{"no match", "d", "", nil},
		{"after present key", "b/", "b/2", []string{"b/3", "b/30"}},
		{"after absent key", "b/", "b/25", []string{"b/3", "b/30"}},
		{"after last key", "b/", "b/30", nil},
		{"after before prefix", "b/", "a", []string{"b/1", "b/2", "b/3", "b/30"}},
		{"after beyond prefix", "b/", "b0", nil},
		{"after equals prefix", "b/3", "b/3", []string{"b/30"}},
		{"after without prefix", "", "b/30", []string{"b0", "c/1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, k := range tt.want {
				want = append(want, k+"="+k)
			}
			got := scan(t, s, "b", tt.prefix, tt.after)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Scan(prefix %q, after %q) (-want +got):\n%s", tt.prefix, tt.after, diff)
			}
		})
	}
}

func testScanStop(t *testing.T, s store.Store) {
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		put(t, s, "b", k, k)
	}
	var got []string
	err := s.View(t.Context(), func(tx store.Tx) error {
		return tx.Scan("b", "", "", func(k string, _ []byte) bool {
			got = append(got, k)
			return len(got) < 2
		})
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	if diff := cmp.Diff([]string{"k1", "k2"}, got); diff != "" {
		t.Errorf("keys seen by a Scan stopping after the second (-want +got):\n%s", diff)
	}
}

func testScanMissingBucket(t *testing.T, s store.Store) {
	put(t, s, "other", "k", "v")
	if got := scan(t, s, "nobucket", "", ""); got != nil {
		t.Errorf("Scan of a missing bucket = %q, want nothing", got)
	}
}

func testBucketsIndependent(t *testing.T, s store.Store) {
	put(t, s, "one", "k", "in one")
	put(t, s, "two", "k", "in two")
	put(t, s, "two", "only", "x")
	wantValue(t, s, "one", "k", "in one")
	wantValue(t, s, "two", "k", "in two")
	wantMissing(t, s, "one", "only")

	err := s.Update(t.Context(), func(tx store.Tx) error { return tx.Delete("two", "k") })
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	wantValue(t, s, "one", "k", "in one")
	if diff := cmp.Diff([]string{"k=in one"}, scan(t, s, "one", "", "")); diff != "" {
		t.Errorf("Scan of bucket one (-want +got):\n%s", diff)
	}
}

func testUpdateErrorKeepsNothing(t *testing.T, s store.Store) {
	put(t, s, "b", "kept", "old")
	put(t, s, "b", "doomed", "still here")
	errFn := errors.New("fn failed")
	err := s.Update(t.Context(), func(tx store.Tx) error {
		if err := tx.Put("b", "kept", []byte("new")); err != nil {
			return err
		}
		if err := tx.Put("b", "added", []byte("x")); err != nil {
			return err
		}
		if err := tx.Put("newbucket", "k", []byte("x")); err != nil {
			return err
		}
		if err := tx.Delete("b", "doomed"); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errFn)
	})
	if !errors.Is(err, errFn) {
		t.Fatalf("Update error = %v, want fn's error", err)
	}
	if got, want := err.Error(), "wrapped: fn failed"; got != want {
		t.Errorf("Update error = %q, want fn's error unchanged, %q", got, want)
	}
	wantValue(t, s, "b", "kept", "old")
	wantValue(t, s, "b", "doomed", "still here")
	wantMissing(t, s, "b", "added")
	if got := scan(t, s, "newbucket", "", ""); got != nil {
		t.Errorf("bucket made by a failed Update holds %q, want nothing", got)
	}
}

func testViewSnapshot(t *testing.T, s store.Store) {
	put(t, s, "b", "x", "1")
	put(t, s, "b", "y", "1")
	done := make(chan error, 1)
	err := s.View(t.Context(), func(tx store.Tx) error {
		if v, err := tx.Get("b", "x"); err != nil || string(v) != "1" {
			return fmt.Errorf("Get(x) before the concurrent Update = %q, %v; want 1", v, err)
		}
		go func() {
			done <- s.Update(t.Context(), func(tx store.Tx) error {
				if err := tx.Put("b", "x", []byte("2")); err != nil {
					return err
				}
				if err := tx.Put("b", "y", []byte("2")); err != nil {
					return err
				}
				return tx.Put("b", "z", []byte("2"))
			})
		}()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("concurrent Update: %w", err)
			}
		case <-time.After(snapshotWait):
			return fmt.Errorf("concurrent Update did not finish within %s while a View was open", snapshotWait)
		}
		// The Update has committed; this View must not see any of it.
		var got []string
		err := tx.Scan("b", "", "", func(k string, v []byte) bool {
			got = append(got, k+"="+string(v))
			return true
		})
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{"x=1", "y=1"}, got); diff != "" {
			t.Errorf("View after a concurrent Update (-want +got):\n%s", diff)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	wantValue(t, s, "b", "x", "2")
	wantValue(t, s, "b", "z", "2")
}

func testViewRejectsWrites(t *testing.T, s store.Store) {
	put(t, s, "b", "k", "v")
	err := s.View(t.Context(), func(tx store.Tx) error {
		writes := []struct {
			name string
			fn   func() error
		}{
			{"Put in an existing bucket", func() error { return tx.Put("b", "k", []byte("changed")) }},
			{"Put in a new bucket", func() error { return tx.Put("new", "k", []byte("v")) }},
			{"Delete of a present key", func() error { return tx.Delete("b", "k") }},
			{"Delete from a missing bucket", func() error { return tx.Delete("nobucket", "k") }},
		}
		for _, w := range writes {
			if err := w.fn(); err == nil {
				t.Errorf("%s inside View succeeded, want an error", w.name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	wantValue(t, s, "b", "k", "v")
	wantMissing(t, s, "new", "k")
}

func testViewReturnsFnError(t *testing.T, s store.Store) {
	errFn := errors.New("view fn failed")
	err := s.View(t.Context(), func(store.Tx) error { return errFn })
	if !errors.Is(err, errFn) {
		t.Errorf("View error = %v, want fn's error", err)
	}
}

// testConcurrentUpdates runs many Updates at once, each a read-modify-write
// of a shared counter plus a key of its own, and every tenth failing after
// its writes. It catches a backend that coalesces commits or retries fn and
// loses, doubles or leaks a write while doing it.
func testConcurrentUpdates(t *testing.T, s store.Store) {
	const n = 200
	errFn := errors.New("planned failure")
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Update(t.Context(), func(tx store.Tx) error {
				return increment(tx, i, errFn)
			})
		})
	}
	wg.Wait()

	failed := 0
	for i, err := range errs {
		switch {
		case i%10 == 9 && !errors.Is(err, errFn):
			t.Errorf("Update %d error = %v, want its fn's error", i, err)
		case i%10 == 9:
			failed++
			wantMissing(t, s, "own", strconv.Itoa(i))
		case err != nil:
			t.Errorf("Update %d: %v", i, err)
		default:
			wantValue(t, s, "own", strconv.Itoa(i), "done")
		}
	}
	wantValue(t, s, "shared", "counter", strconv.Itoa(n-failed))
}

// increment adds one to the shared counter and marks key i done; for every
// tenth i it then fails with errFn.
func increment(tx store.Tx, i int, errFn error) error {
	n := 0
	v, err := tx.Get("shared", "counter")
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		if n, err = strconv.Atoi(string(v)); err != nil {
			return fmt.Errorf("parsing counter: %w", err)
		}
	}
	if err := tx.Put("shared", "counter", []byte(strconv.Itoa(n+1))); err != nil {
		return err
	}
	if err := tx.Put("own", strconv.Itoa(i), []byte("done")); err != nil {
		return err
	}
	if i%10 == 9 {
		return errFn
	}
	return nil
}

func testContextCanceled(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	called := false
	err := s.Update(ctx, func(tx store.Tx) error {
		called = true
		return tx.Put("b", "k", []byte("v"))
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update with a canceled context: error %v, want context.Canceled", err)
	}
	err = s.View(ctx, func(store.Tx) error {
		called = true
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("View with a canceled context: error %v, want context.Canceled", err)
	}
	if called {
		t.Error("fn ran although the context was canceled first")
	}
	wantMissing(t, s, "b", "k")
}
