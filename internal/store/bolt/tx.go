package bolt

import (
	"bytes"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/keygate/keygate/internal/store"
)

// errReadOnly is returned by writes inside View.
var errReadOnly = errors.New("transaction is read-only")

// tx adapts a bbolt transaction to store.Tx. Each bucket of the store is a
// top-level bbolt bucket of the same name; the store never nests buckets.
type tx struct {
	btx *bbolt.Tx
}

// Get implements store.Tx.
func (t *tx) Get(bucket, key string) ([]byte, error) {
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil, store.ErrNotFound
	}
	// bbolt returns nil both for an absent key and for a nested bucket;
	// the store makes no nested buckets, so either way there is no value.
	v := b.Get([]byte(key))
	if v == nil {
		return nil, store.ErrNotFound
	}
	return v, nil
}

// Put implements store.Tx.
func (t *tx) Put(bucket, key string, value []byte) error {
	if !t.btx.Writable() {
		return fmt.Errorf("putting %q in %q: %w", key, bucket, errReadOnly)
	}
	b, err := t.btx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("creating bucket %q: %w", bucket, err)
	}
	// bbolt keeps a reference to value until the commit; the caller may
	// reuse its slice as soon as Put returns, so bbolt gets a copy. A nil
	// value is stored as an empty one.
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	if err := b.Put([]byte(key), v); err != nil {
		return fmt.Errorf("putting %q in %q: %w", key, bucket, err)
	}
	return nil
}

// Delete implements store.Tx.
func (t *tx) Delete(bucket, key string) error {
	if !t.btx.Writable() {
		return fmt.Errorf("deleting %q from %q: %w", key, bucket, errReadOnly)
	}
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("deleting %q from %q: %w", key, bucket, err)
	}
	return nil
}

// Scan implements store.Tx.
func (t *tx) Scan(bucket, prefix, after string, fn func(key string, value []byte) bool) error {
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	// Start at whichever of prefix and after sorts later: keys before
	// prefix cannot have it, keys up to after are excluded.
	start := prefix
	if after > prefix {
		start = after
	}
	c := b.Cursor()
	k, v := c.Seek([]byte(start))
	if after != "" && string(k) == after {
		k, v = c.Next()
	}
	for ; k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
		if v == nil {
			continue // a nested bucket, which the store never makes
		}
		if !fn(string(k), v) {
			return nil
		}
	}
	return nil
}
