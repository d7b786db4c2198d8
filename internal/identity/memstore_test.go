package identity_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/keygate/keygate/internal/store"
)

// memStore is an in-memory store.Store. It stands in for the bolt store in
// unit tests: transactions work on a copy that Update installs only when
// fn succeeds, so a failed update leaves nothing behind, as bolt's does.
type memStore struct {
	mu      sync.Mutex
	buckets map[string]map[string][]byte
}

func newMemStore() *memStore {
	return &memStore{buckets: make(map[string]map[string][]byte)}
}

func (s *memStore) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	snapshot := s.clone()
	s.mu.Unlock()
	return fn(&memTx{buckets: snapshot, readOnly: true})
}

func (s *memStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &memTx{buckets: s.clone()}
	if err := fn(tx); err != nil {
		return err
	}
	s.buckets = tx.buckets
	return nil
}

func (s *memStore) Close() error { return nil }

// clone copies every bucket; values are never modified in place, so they
// are shared. The caller holds mu.
func (s *memStore) clone() map[string]map[string][]byte {
	c := make(map[string]map[string][]byte, len(s.buckets))
	for name, b := range s.buckets {
		c[name] = maps.Clone(b)
	}
	return c
}

// raw returns every value in bucket, for tests that inspect what was
// stored.
func (s *memStore) raw(bucket string) map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.buckets[bucket])
}

type memTx struct {
	buckets  map[string]map[string][]byte
	readOnly bool
}

func (tx *memTx) Get(bucket, key string) ([]byte, error) {
	v, ok := tx.buckets[bucket][key]
	if !ok {
		return nil, store.ErrNotFound
	}
	return v, nil
}

func (tx *memTx) Put(bucket, key string, value []byte) error {
	if tx.readOnly {
		return errors.New("memstore: write in a read-only transaction")
	}
	if tx.buckets[bucket] == nil {
		tx.buckets[bucket] = make(map[string][]byte)
	}
	tx.buckets[bucket][key] = slices.Clone(value)
	return nil
}

func (tx *memTx) Delete(bucket, key string) error {
	if tx.readOnly {
		return errors.New("memstore: write in a read-only transaction")
	}
	delete(tx.buckets[bucket], key)
	return nil
}

func (tx *memTx) Scan(bucket, prefix, after string, fn func(key string, value []byte) bool) error {
	keys := slices.Sorted(maps.Keys(tx.buckets[bucket]))
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) || (after != "" && k <= after) {
			continue
		}
		if !fn(k, tx.buckets[bucket][k]) {
			break
		}
	}
	return nil
}
