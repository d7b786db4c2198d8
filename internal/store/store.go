// Package store defines the storage that keygate's vault keeps its records
// in: a transactional, ordered key-value store split into named buckets.
//
// The vault encodes and seals its records before they reach a Store, so an
// implementation only ever sees opaque bytes for secret material. Two
// implementations exist or are planned: bolt (embedded, the default) and
// postgres (several vault replicas on one database). Both pass the suite in
// package storetest.
package store

import (
	"context"
	"errors"
)

// ErrNotFound is returned by Tx.Get when the key is absent.
var ErrNotFound = errors.New("store: not found")

// ErrUnavailable wraps errors that mean the backend cannot be reached right
// now (a lost database connection, say). The vault answers 503 for them so
// that clients retry.
var ErrUnavailable = errors.New("store: unavailable")

// Store is a transactional key-value store. Its methods are safe for
// concurrent use.
type Store interface {
	// View runs fn in a read-only transaction that sees one consistent
	// snapshot. Writes inside fn fail.
	View(ctx context.Context, fn func(Tx) error) error

	// Update runs fn in a read-write transaction. When Update returns nil
	// every write of fn is durable: it survives a crash of the process.
	// When fn returns an error nothing it wrote is kept and Update returns
	// that error unchanged. fn may be called more than once (a backend may
	// retry it after a conflict, or coalesce several concurrent updates into
	// one commit), so it must not have effects outside the transaction.
	Update(ctx context.Context, fn func(Tx) error) error

	// Close releases the store. Close is safe to call more than once.
	Close() error
}

// Tx is one transaction. A Tx is not safe for concurrent use and is valid
// only inside the function it was passed to.
type Tx interface {
	// Get returns the value stored under key in bucket, or ErrNotFound.
	// The returned slice is valid only for the life of the transaction;
	// callers that keep it must copy it.
	Get(bucket, key string) ([]byte, error)

	// Put stores value under key in bucket, creating the bucket as needed.
	// The store keeps its own copy of value.
	Put(bucket, key string, value []byte) error

	// Delete removes key from bucket. Deleting an absent key is not an
	// error.
	Delete(bucket, key string) error

	// Scan calls fn for each key in bucket that starts with prefix and sorts
	// after the key after (all keys with the prefix when after is empty), in
	// ascending byte order, until fn returns false. The value passed to fn
	// is valid only during that call.
	Scan(bucket, prefix, after string, fn func(key string, value []byte) bool) error
}
