package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/postgres/pgtest"
)

// TestBatchedUpdatesFailAlone runs many Updates at once, so that they
// share transactions: those whose fn fails return their own error and
// leave nothing, the others commit, and the counter every one of them
// bumped counts only the committed.
func TestBatchedUpdatesFailAlone(t *testing.T) {
	s := open(t, pgtest.URL(t))
	defer s.Close()
	errOdd := errors.New("odd writes fail")
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := s.Update(t.Context(), func(tx store.Tx) error {
				if err := tx.Put("items", fmt.Sprint(i), []byte("x")); err != nil {
					return err
				}
				if err := bump(tx); err != nil {
					return err
				}
				if i%2 == 1 {
					return errOdd
				}
				return nil
			})
			if want := map[bool]error{true: errOdd, false: nil}[i%2 == 1]; err != want {
				t.Errorf("Update %d = %v, want %v", i, err, want)
			}
		})
	}
	wg.Wait()

	s.View(t.Context(), func(tx store.Tx) error {
		for i := range n {
			_, err := tx.Get("items", fmt.Sprint(i))
			if kept := err == nil; kept != (i%2 == 0) {
				t.Errorf("item %d kept = %v", i, kept)
			}
		}
		v, _ := tx.Get("counter", "n")
		if got, want := string(v), fmt.Sprint(n/2); got != want {
			t.Errorf("counter = %s, want %s", got, want)
		}
		return nil
	})
}

// TestUpdatePanicReachesItsCaller panics in one fn among concurrent ones:
// the panic is raised in that Update's caller, and the others commit.
func TestUpdatePanicReachesItsCaller(t *testing.T) {
	s := open(t, pgtest.URL(t))
	defer s.Close()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			defer func() {
				p := recover()
				if (p != nil) != (i == 7) {
					t.Errorf("Update %d panicked with %v", i, p)
				}
			}()
			s.Update(t.Context(), func(tx store.Tx) error {
				if i == 7 {
					panic("fn 7 panics")
				}
				return bump(tx)
			})
		})
	}
	wg.Wait()
	s.View(t.Context(), func(tx store.Tx) error {
		if v, _ := tx.Get("counter", "n"); string(v) != "15" {
			t.Errorf("counter = %s, want 15", v)
		}
		return nil
	})
}

// bump adds one to the counter inside tx.
func bump(tx store.Tx) error {
	n := 0
	v, err := tx.Get("counter", "n")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err == nil {
		fmt.Sscan(string(v), &n)
	}
	return tx.Put("counter", "n", []byte(fmt.Sprint(n+1)))
}
