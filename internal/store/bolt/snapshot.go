package bolt

import (
	"context"
	"fmt"
	"io"

	"go.etcd.io/bbolt"
)

// Snapshot implements store.Snapshotter: it writes the database file as
// one read transaction sees it, which bbolt keeps consistent while
// writers go on committing. The copy is itself a database file, which
// Open accepts and checks.
func (s *Store) Snapshot(ctx context.Context, begin func(size int64) io.Writer) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("starting snapshot: %w", err)
	}
	return s.db.View(func(tx *bbolt.Tx) error {
		w := begin(tx.Size())
		if _, err := tx.WriteTo(w); err != nil {
			return fmt.Errorf("writing snapshot: %w", err)
		}
		return nil
	})
}
