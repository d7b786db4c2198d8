package vault_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/seal"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/bolt"
	"github.com/keygate/keygate/internal/vault"
)

func newService(t *testing.T) (*vault.Service, store.Store) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "v.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _ := seal.GenerateKey()
	sealer, _ := seal.NewSealer(key)
	backup, _ := sealer.Derive("backup")
	svc := vault.New(vault.Config{Store: st, Sealer: sealer, BackupSealer: backup})
	if _, err := svc.EnsureVault(context.Background(), vault.DefaultVault, "tenant", []authz.AccessPolicy{}); err != nil {
		t.Fatal(err)
	}
	return svc, st
}

// TestSealedValueMovedToAnotherRecordFails swaps the sealed values of two
// secrets in the store, as someone with write access to the database file
// might: neither opens, and no read returns the other's value.
func TestSealedValueMovedToAnotherRecordFails(t *testing.T) {
	svc, st := newService(t)
	ctx := context.Background()
	a, err := svc.SetSecret(ctx, vault.DefaultVault, "a", vault.SetSecret{Value: "value-a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := svc.SetSecret(ctx, vault.DefaultVault, "b", vault.SetSecret{Value: "value-b"})
	if err != nil {
		t.Fatal(err)
	}

	const bucket = "vault/default/secret-versions"
	keyA, keyB := "a/"+a.Version, "b/"+b.Version
	err = st.Update(ctx, func(tx store.Tx) error {
		recA, recB := readRecord(t, tx, bucket, keyA), readRecord(t, tx, bucket, keyB)
		recA["sealed"], recB["sealed"] = recB["sealed"], recA["sealed"]
		writeRecord(t, tx, bucket, keyA, recA)
		writeRecord(t, tx, bucket, keyB, recB)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"a", "b"} {
		s, err := svc.GetSecret(ctx, vault.DefaultVault, name, "")
		if err == nil {
			t.Errorf("secret %s opened with another record's value (%d bytes)", name, len(s.Value))
		}
		if errors.Is(err, vault.ErrNotFound) {
			t.Errorf("secret %s: %v, want a failure to open", name, err)
		}
	}
}

func readRecord(t *testing.T, tx store.Tx, bucket, key string) map[string]any {
	t.Helper()
	raw, err := tx.Get(bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeRecord(t *testing.T, tx store.Tx, bucket, key string, m map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(m)
	if err := tx.Put(bucket, key, raw); err != nil {
		t.Fatal(err)
	}
}
