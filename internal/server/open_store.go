package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/keygate/keygate/internal/seal"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/bolt"
	"github.com/keygate/keygate/internal/store/postgres"
)

// openStore opens the configured store and returns the sealer of its
// master key; the caller proves the key with checkMasterKey.
func (s *Server) openStore(ctx context.Context) (*seal.Sealer, error) {
	if s.cfg.StoreURL != "" {
		return s.openPostgres(ctx)
	}
	isNew, err := s.newDatabase()
	if err != nil {
		return nil, err
	}
	sealer, err := s.newSealer(isNew, s.dir.database())
	if err != nil {
		return nil, err
	}
	st, err := bolt.Open(s.dir.database(), bolt.Options{})
	if err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	s.st = st
	return sealer, nil
}

// openPostgres opens a shared PostgreSQL store. Whether the database is
// new is told by its records, not by a file: a replica joining a database
// another replica created must be given that database's master key.
func (s *Server) openPostgres(ctx context.Context) (*seal.Sealer, error) {
	if !strings.HasPrefix(s.cfg.StoreURL, "postgres://") && !strings.HasPrefix(s.cfg.StoreURL, "postgresql://") &&
		!strings.Contains(s.cfg.StoreURL, "=") {
		return nil, errors.New("store: want a postgres:// URL or a key=value connection string")
	}
	st, err := postgres.Open(ctx, s.cfg.StoreURL, postgres.Options{Logger: s.log.With("component", "store")})
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	s.st = st
	isNew, err := storeIsNew(ctx, st)
	if err != nil {
		return nil, err
	}
	return s.newSealer(isNew, "the PostgreSQL store")
}

// storeIsNew reports whether st holds no keygate records yet.
func storeIsNew(ctx context.Context, st store.Store) (bool, error) {
	err := st.View(ctx, func(tx store.Tx) error {
		_, err := tx.Get(bucketMeta, keyKeyCheck)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading key check: %w", err)
	}
	return false, nil
}

func (s *Server) newSealer(isNew bool, database string) (*seal.Sealer, error) {
	key, err := s.masterKey(isNew, database)
	if err != nil {
		return nil, err
	}
	return seal.NewSealer(key)
}

// newDatabase reports whether the database is yet to be created. An empty
// file counts as existing: it is damage, not a fresh start.
func (s *Server) newDatabase() (bool, error) {
	ok, err := exists(s.dir.database())
	if err != nil {
		return false, fmt.Errorf("checking database: %w", err)
	}
	return !ok, nil
}
