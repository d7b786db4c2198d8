package vault_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// TestSecretChangesAreLoggedInOrder: every change a gateway cares about
// is an event, with ids that rise by one, and subscribers are woken.
func TestSecretChangesAreLoggedInOrder(t *testing.T) {
	svc, st := newService(t)
	ctx := context.Background()
	wake, stop := st.(store.Notifier).Subscribe(vault.EventsTopic(vault.DefaultVault))
	defer stop()

	v1, _ := svc.SetSecret(ctx, vault.DefaultVault, "db", vault.SetSecret{Value: "one"})
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification after a new version")
	}
	off := false
	if _, err := svc.UpdateSecret(ctx, vault.DefaultVault, "db", "", vault.SecretUpdate{Attributes: vault.AttributesUpdate{Enabled: &off}}); err != nil {
		t.Fatal(err)
	}
	svc.DeleteSecret(ctx, vault.DefaultVault, "db")
	svc.RecoverSecret(ctx, vault.DefaultVault, "db")
	svc.DeleteSecret(ctx, vault.DefaultVault, "db")
	if err := svc.PurgeSecret(ctx, vault.DefaultVault, "db"); err != nil {
		t.Fatal(err)
	}

	evs, err := svc.Events(ctx, vault.DefaultVault, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, e := range evs {
		if e.ID != uint64(i+1) || e.Kind != vault.KindSecret || e.Name != "db" {
			t.Errorf("event %d = %+v", i, e)
		}
		got = append(got, e.Type)
	}
	want := []string{vault.EventNewVersion, vault.EventUpdated, vault.EventDeleted, vault.EventRecovered, vault.EventDeleted, vault.EventPurged}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("event types (-want +got):\n%s", diff)
	}
	if evs[0].Version != v1.Version || evs[1].Detail != "enabled=false" {
		t.Errorf("first events: %+v %+v", evs[0], evs[1])
	}

	// Paging after an id.
	page, _ := svc.Events(ctx, vault.DefaultVault, 4, 1)
	if len(page) != 1 || page[0].ID != 5 {
		t.Errorf("Events(after 4, max 1) = %+v", page)
	}
}

// TestEventIDsAreUniqueUnderConcurrentWriters writes from many goroutines
// at once: every id is handed out once, with no gap.
func TestEventIDsAreUniqueUnderConcurrentWriters(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			svc.SetSecret(ctx, vault.DefaultVault, "s"+string(rune('a'+i)), vault.SetSecret{Value: "v"})
		})
	}
	wg.Wait()
	evs, _ := svc.Events(ctx, vault.DefaultVault, 0, 100)
	if len(evs) != 20 {
		t.Fatalf("%d events, want 20", len(evs))
	}
	for i, e := range evs {
		if e.ID != uint64(i+1) {
			t.Fatalf("event %d has id %d", i, e.ID)
		}
	}
}

func TestPruneKeepsTheSequence(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	svc.SetSecret(ctx, vault.DefaultVault, "a", vault.SetSecret{Value: "v"})
	svc.SetSecret(ctx, vault.DefaultVault, "a", vault.SetSecret{Value: "w"})
	n, err := svc.PruneEvents(ctx, vault.DefaultVault, time.Now().Add(time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("PruneEvents = %d, %v", n, err)
	}
	if oldest, _ := svc.OldestEventID(ctx, vault.DefaultVault); oldest != 0 {
		t.Errorf("oldest after pruning all = %d", oldest)
	}
	svc.SetSecret(ctx, vault.DefaultVault, "a", vault.SetSecret{Value: "x"})
	if oldest, _ := svc.OldestEventID(ctx, vault.DefaultVault); oldest != 3 {
		t.Errorf("next id after pruning = %d, want 3 (ids are never reused)", oldest)
	}
}
