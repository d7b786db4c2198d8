package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/internal/store"
)

// Write batching. Every write of the vault also appends to its event log,
// whose sequence is one row: concurrent SERIALIZABLE transactions that
// each read and bump it conflict, and all but one are aborted and retried,
// so that under load the retries, not the database, set the pace. Like
// the embedded store, this one therefore runs the Updates that arrive
// while a transaction is in progress together in the next one, each fn in
// a savepoint of its own so that one fn's failure undoes only its own
// writes, and commits them with one fsync.

// maxBatch bounds how many fns one transaction runs.
const maxBatch = 256

// batchTimeout bounds a batch's transaction, which no single caller's
// context governs.
const batchTimeout = 30 * time.Second

// write is one Update waiting for its batch.
type write struct {
	ctx  context.Context
	fn   func(store.Tx) error
	done chan result
}

// result is how a write ended: its error, or the value it panicked with.
type result struct {
	err      error
	panicked any
}

// batcher queues the Updates of one Store.
type batcher struct {
	mu      sync.Mutex
	pending []*write
	running bool // a goroutine is draining pending
}

// Update implements store.Store. fn runs in a SERIALIZABLE transaction,
// with the fns of concurrent Updates, each in a savepoint of its own, and
// runs again from the start when PostgreSQL aborts the transaction for a
// conflict with another process's. An Update with no other in progress
// runs alone, at once. fn's own error comes back unchanged, with nothing
// it wrote kept; a panic in fn is raised again in the caller.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("starting transaction: %w", err)
	}
	w := &write{ctx: ctx, fn: fn, done: make(chan result, 1)}
	s.batch.mu.Lock()
	s.batch.pending = append(s.batch.pending, w)
	lead := !s.batch.running
	s.batch.running = true
	s.batch.mu.Unlock()
	if lead {
		s.drainOne()
	}
	r := <-w.done
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// drainOne runs the pending writes as one batch, then hands what arrived
// meanwhile to a new goroutine, so that the caller that led returns as
// soon as its own write is done.
func (s *Store) drainOne() {
	s.batch.mu.Lock()
	n := min(len(s.batch.pending), maxBatch)
	batch := s.batch.pending[:n:n]
	s.batch.pending = s.batch.pending[n:]
	s.batch.mu.Unlock()

	s.runBatch(batch)

	s.batch.mu.Lock()
	more := len(s.batch.pending) > 0
	s.batch.running = more
	s.batch.mu.Unlock()
	if more {
		go s.drainOne()
	}
}

// runBatch runs batch, retrying it whole after conflicts, and tells every
// write how it ended.
func (s *Store) runBatch(batch []*write) {
	var err error
	for attempt := range maxAttempts {
		var results []result
		results, err = s.tryBatch(batch)
		if err == nil {
			for i, w := range batch {
				w.done <- results[i]
			}
			return
		}
		if !isConflict(err) {
			break
		}
		if sleep(context.Background(), backoff(attempt)) != nil {
			break
		}
	}
	if isConflict(err) {
		err = fmt.Errorf("committing to database: gave up after %d conflicts: %w", maxAttempts, err)
	}
	for _, w := range batch {
		w.done <- result{err: err}
	}
}

// tryBatch runs the writes of batch in one transaction and commits it. It
// returns each write's result, or an error that ends them all (a
// conflict, after which the batch may run again; a lost database).
func (s *Store) tryBatch(batch []*write) ([]result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return nil, fmt.Errorf("starting transaction: %w", classify(err))
	}
	// Rollback after a commit is a no-op; on every other path it ends the
	// transaction and returns the connection to the pool.
	defer ptx.Rollback(context.WithoutCancel(ctx))

	results := make([]result, len(batch))
	kept := 0
	for i, w := range batch {
		r, err := s.runOne(ctx, ptx, w, len(batch) > 1)
		if err != nil {
			return nil, err
		}
		results[i] = r
		if r.err == nil && r.panicked == nil {
			kept++
		}
	}
	if kept == 0 {
		return results, nil // nothing to commit
	}
	if err := ptx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("committing to database: %w", classify(err))
	}
	return results, nil
}

// runOne runs one write's fn inside the batch's transaction, in a
// savepoint when it shares the transaction. A failing fn is undone to
// its savepoint and keeps its error; an error of the database that dooms
// the whole transaction comes back as the second result.
func (s *Store) runOne(ctx context.Context, ptx pgx.Tx, w *write, shared bool) (result, error) {
	if err := w.ctx.Err(); err != nil {
		return result{err: fmt.Errorf("starting transaction: %w", err)}, nil
	}
	t := &tx{ctx: ctx, ptx: ptx, writable: true}
	if shared {
		// Sent with the fn's first read, or its last write.
		t.pending = append(t.pending, statement{sql: "SAVEPOINT batch_write", what: "starting transaction"})
	}
	r := callFn(w.fn, t)
	if t.err != nil {
		if isConflict(t.err) || errors.Is(t.err, store.ErrUnavailable) {
			return result{}, t.err
		}
		if r.err == nil || !errors.Is(r.err, t.err) {
			// fn went on after a database error of ours, or failed for
			// another reason; the database's error explains it.
			r.err = t.err
		}
	}

	failed := r.err != nil || r.panicked != nil
	switch {
	case failed && shared && t.sent:
		if _, err := ptx.Exec(ctx, "ROLLBACK TO SAVEPOINT batch_write"); err != nil {
			return result{}, fmt.Errorf("undoing a failed write: %w", classify(err))
		}
	case failed:
		// Nothing of the fn reached the database: its queued statements,
		// the savepoint among them, are dropped.
	default:
		// The write's queued statements go now, with the savepoint's
		// release; a database error there fails the write.
		var extra []statement
		if shared {
			extra = append(extra, statement{sql: "RELEASE SAVEPOINT batch_write", what: "committing to database"})
		}
		if err := t.flush(extra...); err != nil {
			if isConflict(err) || errors.Is(err, store.ErrUnavailable) {
				return result{}, err
			}
			r.err = err
			if shared {
				if _, err := ptx.Exec(ctx, "ROLLBACK TO SAVEPOINT batch_write"); err != nil {
					return result{}, fmt.Errorf("undoing a failed write: %w", classify(err))
				}
			}
		}
	}
	// Alone in the transaction, a failed write is undone by not
	// committing, which tryBatch decides from the result.
	return r, nil
}

// callFn runs fn, turning a panic into a result that Update raises again
// in its caller's goroutine.
func callFn(fn func(store.Tx) error, t *tx) (r result) {
	defer func() {
		if p := recover(); p != nil {
			r = result{panicked: p}
		}
	}()
	return result{err: fn(t)}
}
