package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migrations are the schema, one step per entry, applied in order and
// never edited once released: a change is a new entry. Entry i brings the
// schema to version i+1.
var migrations = []string{
	// 1: the key-value records. Keys are bytea so that ORDER BY compares
	// bytes, whatever the database's collation, as the embedded store does.
	`CREATE TABLE keygate_kv (
		bucket text  NOT NULL,
		key    bytea NOT NULL,
		value  bytea NOT NULL,
		PRIMARY KEY (bucket, key)
	)`,
}

// migrationLock is the key of the advisory lock that serializes migrations
// of replicas starting at once ("keygate" in ASCII).
const migrationLock = 0x6b657967617465

// migrate applies the migrations the database lacks, in one transaction
// under an advisory lock, and returns how many it applied. A database whose
// schema is newer than this binary's is refused: an older replica must not
// write to a schema it does not know.
func (s *Store) migrate(ctx context.Context) (int, error) {
	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, classify(err)
	}
	defer ptx.Rollback(context.WithoutCancel(ctx))
	applied := 0
	err = func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return classify(err)
		}
		if _, err := tx.Exec(ctx,
			`CREATE TABLE IF NOT EXISTS keygate_schema (version integer NOT NULL)`); err != nil {
			return classify(err)
		}
		var version int
		if err := tx.QueryRow(ctx,
			`SELECT coalesce(max(version), 0) FROM keygate_schema`).Scan(&version); err != nil {
			return classify(err)
		}
		if version > len(migrations) {
			return fmt.Errorf("the database's schema is version %d, newer than this keygate's %d: upgrade keygate",
				version, len(migrations))
		}
		for i := version; i < len(migrations); i++ {
			if _, err := tx.Exec(ctx, migrations[i]); err != nil {
				return fmt.Errorf("applying migration %d: %w", i+1, classify(err))
			}
			if _, err := tx.Exec(ctx, `INSERT INTO keygate_schema (version) VALUES ($1)`, i+1); err != nil {
				return classify(err)
			}
			applied++
		}
		return nil
	}(ptx)
	if err != nil {
		return 0, err
	}
	if err := ptx.Commit(ctx); err != nil {
		return 0, classify(err)
	}
	return applied, nil
}
