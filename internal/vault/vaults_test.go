package vault_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

func TestCreateAndDeleteVault(t *testing.T) {
	svc, st := newService(t)
	ctx := context.Background()
	days := 14
	v, err := svc.CreateVault(ctx, "Team", "tenant", vault.VaultProperties{SoftDeleteRetentionInDays: &days})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "team" || v.SoftDeleteRetentionInDays != 14 || !v.EnableSoftDelete ||
		v.NetworkACLs.DefaultAction != authz.ActionAllow || v.NetworkACLs.Bypass != authz.BypassAzureServices {
		t.Errorf("created %+v", v)
	}
	if _, err := svc.CreateVault(ctx, "team", "tenant", vault.VaultProperties{}); !errors.Is(err, vault.ErrConflict) {
		t.Errorf("second create: %v, want ErrConflict", err)
	}
	if _, err := svc.SetSecret(ctx, "team", "s", vault.SetSecret{Value: "v"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DeleteSecret(ctx, "team", "s"); err != nil {
		t.Fatal(err)
	}

	d, err := svc.DeleteVault(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	if d.Vault.Name != "team" || !d.ScheduledPurgeDate.Equal(d.DeletionDate.Add(14*24*time.Hour)) {
		t.Errorf("deleted vault %+v, want purge 14 days after deletion", d)
	}
	if _, err := svc.Vault(ctx, "team"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("vault after delete: %v", err)
	}
	// Soft-deleted: the objects are kept, and the name is held.
	if n := countRecords(t, st, "vault/team/secrets", "vault/team/secret-versions", "vault/team/purge"); n != 3 {
		t.Errorf("a soft-deleted vault keeps %d records, want 3", n)
	}
	if _, err := svc.CreateVault(ctx, "team", "tenant", vault.VaultProperties{}); !errors.Is(err, vault.ErrDeletedVaultExists) ||
		!errors.Is(err, vault.ErrConflict) {
		t.Errorf("creating over a deleted vault: %v, want ErrDeletedVaultExists", err)
	}
	if _, err := svc.DeleteVault(ctx, "team"); !errors.Is(err, vault.ErrNotFound) ||
		!strings.Contains(err.Error(), "already deleted") {
		t.Errorf("deleting twice: %v", err)
	}

	// Purged: nothing of the vault is left in the store.
	if _, err := svc.PurgeDeletedVault(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	if n := countRecords(t, st, "vault/team/secrets", "vault/team/secret-versions", "vault/team/purge", "deleted-vaults"); n != 0 {
		t.Errorf("a purged vault left %d records", n)
	}
	if _, err := svc.DeleteVault(ctx, vault.DefaultVault); !errors.Is(err, vault.ErrBadParameter) {
		t.Errorf("deleting the default vault: %v", err)
	}
	if _, err := svc.PurgeDeletedVault(ctx, "team"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("purging twice: %v", err)
	}
}

// countRecords counts the records in buckets.
func countRecords(t *testing.T, st store.Store, buckets ...string) int {
	t.Helper()
	n := 0
	err := st.View(context.Background(), func(tx store.Tx) error {
		n = 0
		for _, b := range buckets {
			err := tx.Scan(b, "", "", func(string, []byte) bool { n++; return true })
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestVaultPropertiesBadInput(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	before, err := svc.Vault(ctx, vault.DefaultVault)
	if err != nil {
		t.Fatal(err)
	}
	before = clone(before)
	off, short := false, 6
	for _, tc := range []struct {
		p     vault.VaultProperties
		field string
	}{
		{vault.VaultProperties{EnableSoftDelete: &off}, "enableSoftDelete"},
		{vault.VaultProperties{SoftDeleteRetentionInDays: &short}, "softDeleteRetentionInDays"},
		{vault.VaultProperties{NetworkACLs: &authz.NetworkACLs{DefaultAction: "Sometimes"}}, "networkAcls.defaultAction"},
		{vault.VaultProperties{AccessPolicies: &[]authz.AccessPolicy{{TenantID: "t"}}}, "accessPolicies[0].objectId"},
	} {
		_, err := svc.UpdateVault(ctx, vault.DefaultVault, tc.p)
		if !errors.Is(err, vault.ErrBadParameter) || !strings.HasPrefix(err.Error(), tc.field) {
			t.Errorf("UpdateVault: %v, want a bad parameter naming %s", err, tc.field)
		}
	}
	if _, err := svc.AddIPRules(ctx, vault.DefaultVault, []string{"10.0.0.1", "nonsense"}); !errors.Is(err, vault.ErrBadParameter) {
		t.Errorf("AddIPRules with a bad rule: %v", err)
	}
	if _, err := svc.RemoveIPRules(ctx, vault.DefaultVault, []string{"10.0.0.1"}); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("RemoveIPRules of an absent rule: %v", err)
	}
	after, err := svc.Vault(ctx, vault.DefaultVault)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("refused updates changed the vault (-before +after):\n%s", diff)
	}
	for _, name := range []string{"ab", "1abc", "a_b", "a--b", "abc-", strings.Repeat("a", 25)} {
		if _, err := svc.CreateVault(ctx, name, "t", vault.VaultProperties{}); !errors.Is(err, vault.ErrBadParameter) ||
			!strings.Contains(err.Error(), "vault name") {
			t.Errorf("CreateVault(%q): %v", name, err)
		}
	}
}

func TestIPRules(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	v, err := svc.AddIPRules(ctx, vault.DefaultVault, []string{"10.0.0.1", "10.0.0.1/32", "2001:db8::/48"})
	if err != nil {
		t.Fatal(err)
	}
	want := []authz.IPRule{{Value: "10.0.0.1/32"}, {Value: "2001:db8::/48"}}
	if diff := cmp.Diff(want, v.NetworkACLs.IPRules); diff != "" {
		t.Errorf("after add (-want +got):\n%s", diff)
	}
	v, err = svc.RemoveIPRules(ctx, vault.DefaultVault, []string{"10.0.0.1"})
	if err != nil || len(v.NetworkACLs.IPRules) != 1 {
		t.Errorf("after remove: %+v, %v", v.NetworkACLs, err)
	}
}

func clone(v *vault.Vault) *vault.Vault {
	c := *v
	return &c
}
