package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/internal/store"
)

// errReadOnly is returned by writes inside View.
var errReadOnly = errors.New("transaction is read-only")

// scanChunk is how many rows Scan fetches per query. A scan that the
// caller stops early (a page of a listing) reads little more than it uses;
// a full scan costs one round trip per chunk.
const scanChunk = 256

// tx adapts a PostgreSQL transaction to store.Tx.
type tx struct {
	ctx      context.Context
	ptx      pgx.Tx
	writable bool

	// err is the first database error of the transaction. PostgreSQL
	// aborts a transaction at its first error, so run must not commit one
	// whose fn went on regardless.
	err error

	// pending are writes not sent yet. Put and Delete queue them, and the
	// next read, savepoint or commit sends them along with itself in one
	// round trip: a write transaction costs a round trip per read rather
	// than per statement.
	pending []statement

	// sent is set once anything queued has gone to the database.
	sent bool
}

// statement is one queued SQL statement.
type statement struct {
	sql  string
	args []any
	what string // for errors: "putting "k" in "b""
}

// fail records err as the transaction's and returns it, wrapped with what
// was being done.
func (t *tx) fail(err error, format string, args ...any) error {
	err = fmt.Errorf(format+": %w", append(args, classify(err))...)
	if t.err == nil {
		t.err = err
	}
	return err
}

// Get implements store.Tx.
func (t *tx) Get(bucket, key string) ([]byte, error) {
	const q = `SELECT value FROM keygate_kv WHERE bucket = $1 AND key = $2`
	var v []byte
	var err error
	if len(t.pending) == 0 {
		err = t.ptx.QueryRow(t.ctx, q, bucket, []byte(key)).Scan(&v)
	} else {
		err = t.sendWith(func(br pgx.BatchResults) error { return br.QueryRow().Scan(&v) },
			statement{sql: q, args: []any{bucket, []byte(key)}})
		if t.err != nil {
			return nil, t.err
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, t.fail(err, "getting %q from %q", key, bucket)
	}
	return v, nil
}

// flush sends the queued writes, with extra statements after them.
func (t *tx) flush(extra ...statement) error {
	if len(t.pending) == 0 && len(extra) == 0 {
		return t.err
	}
	err := t.sendWith(func(br pgx.BatchResults) error {
		for _, st := range extra {
			if _, err := br.Exec(); err != nil {
				return t.fail(err, "%s", st.what)
			}
		}
		return nil
	}, extra...)
	if t.err != nil {
		return t.err
	}
	return err
}

// sendWith sends the queued writes and then last in one batch, checks the
// writes' results, and hands the rest to read.
func (t *tx) sendWith(read func(pgx.BatchResults) error, last ...statement) error {
	var b pgx.Batch
	queued := t.pending
	t.pending = nil
	t.sent = true
	for _, st := range append(queued, last...) {
		b.Queue(st.sql, st.args...)
	}
	br := t.ptx.SendBatch(t.ctx, &b)
	defer br.Close()
	for _, st := range queued {
		if _, err := br.Exec(); err != nil {
			return t.fail(err, "%s", st.what)
		}
	}
	return read(br)
}

// Put implements store.Tx.
func (t *tx) Put(bucket, key string, value []byte) error {
	if !t.writable {
		return fmt.Errorf("putting %q in %q: %w", key, bucket, errReadOnly)
	}
	// A copy: the caller may reuse value once Put returns. Not nil: the
	// column is NOT NULL, and nil is an empty value.
	value = append([]byte{}, value...)
	t.pending = append(t.pending, statement{
		sql: `INSERT INTO keygate_kv (bucket, key, value) VALUES ($1, $2, $3)
		 ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value`,
		args: []any{bucket, []byte(key), value},
		what: fmt.Sprintf("putting %q in %q", key, bucket),
	})
	return nil
}

// Delete implements store.Tx.
func (t *tx) Delete(bucket, key string) error {
	if !t.writable {
		return fmt.Errorf("deleting %q from %q: %w", key, bucket, errReadOnly)
	}
	t.pending = append(t.pending, statement{
		sql:  `DELETE FROM keygate_kv WHERE bucket = $1 AND key = $2`,
		args: []any{bucket, []byte(key)},
		what: fmt.Sprintf("deleting %q from %q", key, bucket),
	})
	return nil
}

// Scan implements store.Tx. It reads the keys in chunks, each starting
// after the last key of the one before, so the primary key's index serves
// every chunk and the caller may stop at any point.
func (t *tx) Scan(bucket, prefix, after string, fn func(key string, value []byte) bool) error {
	if err := t.flush(); err != nil {
		return err
	}
	cursor := []byte(after)
	for {
		keys, values, err := t.scanChunk(bucket, []byte(prefix), cursor)
		if err != nil {
			return t.fail(err, "scanning %q", bucket)
		}
		for i, k := range keys {
			if !bytes.HasPrefix(k, []byte(prefix)) {
				return nil // past the last key with the prefix
			}
			if !fn(string(k), values[i]) {
				return nil
			}
		}
		if len(keys) < scanChunk {
			return nil
		}
		cursor = keys[len(keys)-1]
	}
}

// scanChunk returns up to scanChunk keys of bucket, with their values,
// that sort at or after prefix and strictly after cursor.
func (t *tx) scanChunk(bucket string, prefix, cursor []byte) (keys, values [][]byte, err error) {
	rows, err := t.ptx.Query(t.ctx,
		`SELECT key, value FROM keygate_kv
		 WHERE bucket = $1 AND key >= $2 AND key > $3
		 ORDER BY key LIMIT $4`,
		bucket, prefix, cursor, scanChunk)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, nil, err
		}
		keys = append(keys, k)
		values = append(values, v)
	}
	return keys, values, rows.Err()
}
