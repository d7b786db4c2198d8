package bolt_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/internal/store"
)

// benchClients is how many goroutines BenchmarkUpdateParallel runs, the
// number of clients writing at once.
const benchClients = 128

// benchValue is the size of a sealed secret of about 100 bytes.
var benchValue = make([]byte, 200)

// BenchmarkUpdateParallel measures durable writes from many clients at
// once, each putting a new key, which the store coalesces into shared
// commits.
func BenchmarkUpdateParallel(b *testing.B) {
	s := mustOpen(b, dbPath(b))
	var next atomic.Int64
	b.SetParallelism(max(1, benchClients/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("secret/%09d", next.Add(1))
			err := s.Update(b.Context(), func(tx store.Tx) error {
				return tx.Put("secrets", key, benchValue)
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkUpdateSerial measures durable writes from one client: each
// Update waits for its own commit and fsync.
func BenchmarkUpdateSerial(b *testing.B) {
	s := mustOpen(b, dbPath(b))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		key := fmt.Sprintf("secret/%09d", i)
		err := s.Update(b.Context(), func(tx store.Tx) error {
			return tx.Put("secrets", key, benchValue)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkViewParallel measures reads of one record from many clients.
func BenchmarkViewParallel(b *testing.B) {
	s := mustOpen(b, dbPath(b))
	err := s.Update(b.Context(), func(tx store.Tx) error {
		return tx.Put("secrets", "secret/a", benchValue)
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			err := s.View(b.Context(), func(tx store.Tx) error {
				_, err := tx.Get("secrets", "secret/a")
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
