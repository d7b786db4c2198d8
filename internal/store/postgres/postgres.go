// Package postgres is keygate's shared store: a store.Store in a PostgreSQL
// database (13 or newer), so that several vault replicas serve one set of
// records.
//
// Every record is a row of one table, keyed by bucket and key, with keys
// compared as bytes so that scans run in the same order as the embedded
// store's. Reads run in REPEATABLE READ transactions, which see one
// snapshot; writes run in SERIALIZABLE ones, retried when PostgreSQL
// reports a conflict, so a read-modify-write in Update behaves as if the
// Updates of every replica ran one at a time. Concurrent Updates of one
// process share a transaction and its commit (batch.go). A commit returns only once
// PostgreSQL has it on disk (synchronous_commit on, the server's default).
//
// The store only ever holds what the vault gives it: sealed values and
// record metadata; no plaintext secret reaches the database.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/internal/store"
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// MaxConns bounds the connections the store holds open. Zero means
	// pgxpool's default (the larger of 4 and the number of CPUs).
	MaxConns int32

	// Logger receives lifecycle messages (connected, schema migrated,
	// closed). Nil discards them.
	Logger *slog.Logger
}

// maxAttempts bounds how often Update runs a transaction that PostgreSQL
// aborted for a conflict with a concurrent one. Conflicts are resolved by
// one side committing, so each retry makes progress; the bound only stops
// a pathological storm from retrying forever.
const maxAttempts = 30

// Store is a store.Store in a PostgreSQL database. It is safe for
// concurrent use. Close it to release its connections.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	host string

	// channel is the LISTEN/NOTIFY channel of this schema's replicas;
	// hub wakes this process's subscribers when a notification arrives.
	channel    string
	hub        store.Hub
	listenOnce sync.Once
	stop       context.CancelFunc // ends the listener
	listenerWG sync.WaitGroup

	// batch gathers concurrent Updates into shared transactions.
	batch batcher

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, as libpq takes them), applies the schema migrations
// that are missing, and returns the Store. Several processes may Open the
// same database at once: migrations take a database-wide lock.
//
// url may carry a password; it appears in no error or log line.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors quote the connection string, password and all.
		return nil, errors.New("parsing PostgreSQL connection string: malformed URL or key=value list")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	host := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL at %s: %w", host, classify(err))
	}
	s := &Store{pool: pool, log: opts.Logger, host: host, stop: func() {}}
	applied, err := s.migrate(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrating schema at %s: %w", host, err)
	}
	if err := s.setChannel(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	s.log.Info("database opened", "database", host, "migrations_applied", applied,
		"schema_version", len(migrations))
	return s, nil
}

// Pool is the store's connection pool, for features that need PostgreSQL
// itself (LISTEN/NOTIFY, advisory locks) beside the key-value store.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// View implements store.Store.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	txOpts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	return s.run(ctx, txOpts, false, fn)
}

// run runs fn in one transaction and commits it when fn returns nil. fn's
// own error comes back unchanged; the store's are wrapped, and those that
// mean the database cannot be reached wrap store.ErrUnavailable.
func (s *Store) run(ctx context.Context, opts pgx.TxOptions, writable bool, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("starting transaction: %w", err)
	}
	ptx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("starting transaction: %w", classify(err))
	}
	// Rollback after a commit is a no-op; on every other path it ends the
	// transaction and returns the connection to the pool.
	defer ptx.Rollback(context.WithoutCancel(ctx))

	t := &tx{ctx: ctx, ptx: ptx, writable: writable}
	if err := fn(t); err != nil {
		if t.err != nil && !errors.Is(err, t.err) {
			// fn swallowed a database error and failed for another
			// reason; the database's is the one that explains it.
			return t.err
		}
		return err
	}
	if t.err != nil {
		// fn ignored an error of ours; the transaction is aborted and
		// must not look committed.
		return t.err
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("committing to database: %w", classify(err))
	}
	return nil
}

// Close closes every connection. It waits for transactions in progress.
// It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// Taking the listener's Once orders this after any start of it,
		// and keeps a later Subscribe from starting one.
		s.listenOnce.Do(func() {})
		s.stop()
		s.listenerWG.Wait()
		s.pool.Close()
		s.log.Info("database closed", "database", s.host)
	})
	return nil
}

// backoff is the pause before retry attempt+1 of a conflicting write:
// short, growing, and spread so that two replicas retrying the same
// conflict do not collide again in step.
func backoff(attempt int) time.Duration {
	d := time.Duration(1<<min(attempt, 6)) * 100 * time.Microsecond
	return d/2 + time.Duration(time.Now().UnixNano()%int64(d/2+1))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
