package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"

	"github.com/keygate/keygate/internal/seal"
	"github.com/keygate/keygate/internal/store"
)

const (
	bucketMeta  = "meta"
	keyKeyCheck = "key-check"
)

// keyCheckAAD binds the key-check record, which proves at start that the
// master key is the one the database was sealed with.
var keyCheckAAD = []byte("keygate/v1;meta;key-check")

// masterKey finds the master key: given as text (an environment variable),
// by path, or in the data folder. A key is created only for a new
// database: creating one for an existing database would hide every record
// behind a key that cannot open them.
func (s *Server) masterKey(newDatabase bool, database string) (seal.Key, error) {
	switch {
	case s.cfg.MasterKey != "":
		k, err := seal.ParseKey(s.cfg.MasterKey)
		if err != nil {
			return seal.Key{}, fmt.Errorf("reading master key from %s: %w", MasterKeyEnv, err)
		}
		return k, nil
	case s.cfg.MasterKeyFile != "":
		return seal.LoadKeyFile(s.cfg.MasterKeyFile)
	}
	path := s.dir.masterKey()
	if !newDatabase {
		k, err := seal.LoadKeyFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return seal.Key{}, fmt.Errorf("master key %s is missing but %s exists: restore the key file, "+
				"or give the key with --master-key-file or %s; a new key cannot open the stored records",
				path, database, MasterKeyEnv)
		}
		return k, err
	}
	k, created, err := seal.LoadOrCreateKeyFile(path)
	if err == nil && created {
		s.log.Info("created master key", "path", path, "key_id", k.ID())
	}
	return k, err
}

// checkMasterKey proves that sealer opens this database's records, writing
// the proof on first start. A wrong key stops the server rather than let it
// answer every read with an error, or worse, write records no one can open.
func checkMasterKey(ctx context.Context, st store.Store, sealer *seal.Sealer) error {
	var sealed []byte
	err := st.View(ctx, func(tx store.Tx) error {
		b, err := tx.Get(bucketMeta, keyKeyCheck)
		sealed = append([]byte(nil), b...)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return writeKeyCheck(ctx, st, sealer)
	}
	if err != nil {
		return fmt.Errorf("reading key check: %w", err)
	}
	if _, err := sealer.Open(sealed, keyCheckAAD); err != nil {
		if errors.Is(err, seal.ErrWrongKey) {
			return fmt.Errorf("master key %s does not match the database, which was sealed with another key: "+
				"give the key the database was created with", sealer.KeyID())
		}
		return fmt.Errorf("master key check failed, the database may be damaged: %w", err)
	}
	return nil
}

func writeKeyCheck(ctx context.Context, st store.Store, sealer *seal.Sealer) error {
	nonce := make([]byte, 32)
	rand.Read(nonce)
	sealed, err := sealer.Seal(nonce, keyCheckAAD)
	if err != nil {
		return err
	}
	// Put only if absent, in the same transaction: two replicas starting
	// on an empty shared store must not both write a proof, each of its
	// own key. The one that loses checks its key against the winner's.
	var other []byte
	err = st.Update(ctx, func(tx store.Tx) error {
		b, err := tx.Get(bucketMeta, keyKeyCheck)
		if err == nil {
			other = append([]byte(nil), b...)
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		other = nil
		return tx.Put(bucketMeta, keyKeyCheck, sealed)
	})
	if err != nil || other == nil {
		return err
	}
	return checkMasterKey(ctx, st, sealer)
}
