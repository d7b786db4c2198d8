package store

import (
	"context"
	"io"
)

// Snapshotter is a Store that can copy itself whole while it serves, for
// backups: the copy is one consistent moment of the database, taken
// without stopping writes. The embedded store implements it; a shared
// database is backed up with its own tools.
type Snapshotter interface {
	// Snapshot writes the copy to the writer that begin returns, once the
	// copy's size in bytes is known (so that it can be announced, and a
	// copy cut short told apart from a whole one). The copy holds only
	// what the store holds: sealed values, never plaintext.
	Snapshot(ctx context.Context, begin func(size int64) io.Writer) error
}
