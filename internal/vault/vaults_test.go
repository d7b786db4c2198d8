package vault_test

import (
	"context"
	"errors"
	"strings"
	"testing"

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

	if err := svc.DeleteVault(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Vault(ctx, "team"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("vault after delete: %v", err)
	}
	// Nothing of the vault is left in the store.
	err = st.View(ctx, func(tx store.Tx) error {
		for _, b := range []string{"vault/team/secrets", "vault/team/secret-versions", "vault/team/purge"} {
			err := tx.Scan(b, "", "", func(key string, _ []byte) bool {
				t.Errorf("bucket %s still holds %s", b, key)
				return true
			})
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.DeleteVault(ctx, vault.DefaultVault); !errors.Is(err, vault.ErrBadParameter) {
		t.Errorf("deleting the default vault: %v", err)
	}
	if err := svc.DeleteVault(ctx, "team"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("deleting twice: %v", err)
	}
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
