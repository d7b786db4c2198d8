// Package bolt is keygate's embedded store: a store.Store kept in one
// go.etcd.io/bbolt database file.
//
// Writes are durable when Update returns: every commit is fsynced. To keep
// that affordable under load, concurrent Updates are coalesced into one
// bbolt transaction and so share one fsync (see Update).
//
// Open checks the whole file before serving from it, and reports a file
// that is not a database, is truncated or is damaged as ErrCorrupt rather
// than panicking or serving wrong data.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keygate/keygate/internal/store"
)

// Batching parameters. An fsync costs about a millisecond on an SSD and
// more on a disk or network volume, so under load most of an Update's time
// is the fsync. Waiting up to 2ms for other Updates to join a commit lets
// hundreds of clients share one fsync, at the price of at most 2ms of extra
// latency for a lone writer. 1000 calls bound how long one commit's
// transaction runs (and how much one failing call makes the others redo)
// while being far above the concurrency a vault sees.
const (
	maxBatchDelay = 2 * time.Millisecond
	maxBatchSize  = 1000
)

// initialMmapSize is the size of the first memory map of the database. A
// write that outgrows the map must remap, and remapping waits for every
// open read transaction; mapping 64 MiB up front (address space only, the
// file does not grow) keeps long reads such as a backup from stalling
// writers until the file is that large.
const initialMmapSize = 64 << 20

// defaultTimeout is Options.Timeout when it is zero.
const defaultTimeout = time.Second

// ErrCorrupt is wrapped by the error of Open when the file is not a bbolt
// database, is truncated or is damaged. Such a file must be restored from a
// backup; keygate does not repair it.
var ErrCorrupt = errors.New("bolt: database file is damaged")

// ErrLocked is wrapped by the error of Open when another process (or
// another Store in this one) has the database open.
var ErrLocked = errors.New("bolt: database file is in use by another keygate process")

// Options configures Open. The zero value is ready to use.
type Options struct {
	// Timeout bounds how long Open waits for the lock on the file while
	// another process holds it. Zero means one second; negative is an
	// error.
	Timeout time.Duration

	// Logger receives lifecycle messages: the database opened and checked,
	// and closed. Nil discards them.
	Logger *slog.Logger
}

// Store is a store.Store in a bbolt file. It is safe for concurrent use.
// Close it to release the file.
type Store struct {
	db   *bbolt.DB
	log  *slog.Logger
	path string

	// writers counts Updates in progress, so that a lone writer commits at
	// once instead of waiting out the batch delay for company.
	writers atomic.Int32

	// hub wakes this process's subscribers: only one process can have
	// the file open, so it sees every change.
	hub store.Hub

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens the database at path, creating it with mode 0600 if it does
// not exist (its directory must exist), and checks all of it before
// returning.
//
// A file that is not a database, is truncated or is damaged gives an error
// wrapping ErrCorrupt, which says to restore it from a backup. A file that
// another process holds gives, after opts.Timeout, an error wrapping
// ErrLocked.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("opening database %s: Timeout is %s, want zero or more", path, opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}

	db, err := openDB(path, opts.Timeout)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	stats, err := verify(db)
	if err != nil {
		db.Close()
		return nil, corrupt(path, err)
	}
	db.MaxBatchDelay = maxBatchDelay
	db.MaxBatchSize = maxBatchSize

	opts.Logger.Info("database opened", "path", path, "size_bytes", stats.size,
		"buckets", stats.buckets, "records", stats.records,
		"check_duration", time.Since(start))
	return &Store{db: db, log: opts.Logger, path: path}, nil
}

// corrupt returns the error of Open for a damaged file.
func corrupt(path string, cause error) error {
	return fmt.Errorf("opening database %s: %w (%w); restore the file from a backup", path, ErrCorrupt, cause)
}

// View implements store.Store.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("starting read transaction: %w", err)
	}
	var fnErr error
	err := s.db.View(func(btx *bbolt.Tx) error {
		fnErr = fn(&tx{btx: btx})
		return fnErr
	})
	if err != nil && err != fnErr {
		return fmt.Errorf("reading database: %w", err)
	}
	return err
}

// Update implements store.Store.
//
// An Update with no other in progress commits alone, at once. Concurrent
// Updates go through bbolt's DB.Batch, which runs their fns one after
// another in one transaction and commits them together. When one fn fails, the others are rerun without it and the
// failing one is rerun alone, so a fn may run more than once, as
// store.Store allows; its writes are kept only from the run that commits.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("starting write transaction: %w", err)
	}
	// fnErr tells fn's own error, which Update returns unchanged, from
	// bbolt's. Batch returns only after the run that decided the result,
	// and that run set fnErr last; the channel Batch waits on orders the
	// write before the read.
	var fnErr error
	run := func(btx *bbolt.Tx) error {
		fnErr = fn(&tx{btx: btx})
		return fnErr
	}
	var err error
	if s.writers.Add(1) == 1 {
		err = s.db.Update(run)
	} else {
		err = s.db.Batch(run)
	}
	s.writers.Add(-1)
	if err != nil && err != fnErr {
		return fmt.Errorf("committing to database: %w", err)
	}
	return err
}

// Close waits for open transactions to finish and closes the database.
// It is safe to call more than once; later calls return the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.db.Close()
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("closing database %s: %w", s.path, s.closeErr)
		}
		s.log.Info("database closed", "path", s.path)
	})
	return s.closeErr
}
