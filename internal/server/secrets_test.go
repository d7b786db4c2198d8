package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/google/go-cmp/cmp"
)

func TestSecretLifecycle(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	c := tv.secrets

	// Set a first version with every property the SDK sends.
	nbf := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	exp := time.Now().Add(24 * time.Hour).Truncate(time.Second).UTC()
	v1, err := c.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{
		Value:            to.Ptr("s3cret-one"),
		ContentType:      to.Ptr("text/plain"),
		Tags:             map[string]*string{"env": to.Ptr("test")},
		SecretAttributes: &azsecrets.SecretAttributes{NotBefore: &nbf, Expires: &exp},
	}, nil)
	if err != nil {
		t.Fatalf("SetSecret: %v", err)
	}
	if got := *v1.Value; got != "s3cret-one" {
		t.Errorf("set returned value %q", got)
	}
	if got, want := v1.ID.Name(), "db-password"; got != want {
		t.Errorf("id name = %q, want %q", got, want)
	}
	if len(v1.ID.Version()) != 32 {
		t.Errorf("version %q is not 32 characters", v1.ID.Version())
	}
	if !strings.HasPrefix(string(*v1.ID), tv.srv.URL()+"/secrets/db-password/") {
		t.Errorf("id %q is not under the vault URL", *v1.ID)
	}
	a := v1.Attributes
	if !*a.Enabled || !a.NotBefore.Equal(nbf) || !a.Expires.Equal(exp) || a.Created == nil ||
		*a.RecoverableDays != 90 || *a.RecoveryLevel != "Recoverable+Purgeable" {
		t.Errorf("attributes = %+v", a)
	}

	// A second version becomes the current one; the first stays readable.
	v2, err := c.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("s3cret-two")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := c.GetSecret(ctx, "db-password", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *latest.Value != "s3cret-two" || latest.ID.Version() != v2.ID.Version() {
		t.Errorf("latest = %s %q, want version %s", *latest.ID, *latest.Value, v2.ID.Version())
	}
	old, err := c.GetSecret(ctx, "db-password", v1.ID.Version(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if *old.Value != "s3cret-one" || *old.ContentType != "text/plain" || *old.Tags["env"] != "test" {
		t.Errorf("first version = %q %q %v", *old.Value, *old.ContentType, old.Tags)
	}
	// Names are case-insensitive, as in Key Vault.
	if _, err := c.GetSecret(ctx, "DB-Password", "", nil); err != nil {
		t.Errorf("get by other case: %v", err)
	}

	// Update changes properties of one version only.
	upd, err := c.UpdateSecretProperties(ctx, "db-password", v1.ID.Version(), azsecrets.UpdateSecretPropertiesParameters{
		ContentType: to.Ptr("application/x-password"),
		Tags:        map[string]*string{"owner": to.Ptr("ops")},
	}, nil)
	if err != nil {
		t.Fatalf("UpdateSecretProperties: %v", err)
	}
	if *upd.ContentType != "application/x-password" || *upd.Tags["owner"] != "ops" || upd.Tags["env"] != nil {
		t.Errorf("updated = %q %v", *upd.ContentType, upd.Tags)
	}
	// Sending back what was read (read-only attributes included) works, as
	// clients do.
	got, _ := c.GetSecret(ctx, "db-password", "", nil)
	if _, err := c.UpdateSecretProperties(ctx, "db-password", "", azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: got.Attributes,
	}, nil); err != nil {
		t.Errorf("update with read-only attributes: %v", err)
	}

	// Delete, look at it, recover it, delete and purge it.
	del, err := c.DeleteSecret(ctx, "db-password", nil)
	if err != nil {
		t.Fatal(err)
	}
	if del.RecoveryID == nil || del.DeletedDate == nil || del.ScheduledPurgeDate == nil {
		t.Fatalf("deleted bundle lacks recovery fields: %+v", del)
	}
	if d := del.ScheduledPurgeDate.Sub(*del.DeletedDate); d != 90*24*time.Hour {
		t.Errorf("purge scheduled %v after deletion, want 90 days", d)
	}
	if _, err := c.GetSecret(ctx, "db-password", "", nil); statusOf(err) != http.StatusNotFound || codeOf(err) != "SecretNotFound" {
		t.Errorf("get of deleted secret: %v", err)
	}
	if _, err := c.GetDeletedSecret(ctx, "db-password", nil); err != nil {
		t.Errorf("GetDeletedSecret: %v", err)
	}
	if names := deletedNames(t, c); !slices.Equal(names, []string{"db-password"}) {
		t.Errorf("deleted secrets = %v", names)
	}
	if _, err := c.RecoverDeletedSecret(ctx, "db-password", nil); err != nil {
		t.Fatalf("RecoverDeletedSecret: %v", err)
	}
	rec, err := c.GetSecret(ctx, "db-password", "", nil)
	if err != nil || *rec.Value != "s3cret-two" {
		t.Fatalf("after recover: %v", err)
	}
	if _, err := c.DeleteSecret(ctx, "db-password", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedSecret(ctx, "db-password", nil); err != nil {
		t.Fatalf("PurgeDeletedSecret: %v", err)
	}
	if _, err := c.GetDeletedSecret(ctx, "db-password", nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("deleted secret after purge: %v", err)
	}
	// The name is free again.
	if _, err := c.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("three")}, nil); err != nil {
		t.Errorf("set after purge: %v", err)
	}
}

func deletedNames(t *testing.T, c *azsecrets.Client) []string {
	t.Helper()
	var names []string
	pager := c.NewListDeletedSecretPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			names = append(names, p.ID.Name())
		}
	}
	return names
}

func TestListPaging(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	c := tv.secrets

	var want []string
	for i := range 30 {
		name := fmt.Sprintf("s-%02d", i)
		want = append(want, name)
		if _, err := c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var versions []string
	for i := range 27 {
		r, err := c.SetSecret(ctx, "many", azsecrets.SetSecretParameters{Value: to.Ptr(fmt.Sprint(i))}, nil)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, r.ID.Version())
	}
	want = append(want, "many")
	slices.Sort(want)

	var got []string
	pages := 0
	pager := c.NewListSecretPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Value) > 25 {
			t.Errorf("page of %d items, more than 25", len(page.Value))
		}
		for _, p := range page.Value {
			if p.ID.Version() != "" {
				t.Errorf("list item id %s carries a version", *p.ID)
			}
			got = append(got, p.ID.Name())
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed names (-want +got):\n%s", diff)
	}
	if pages < 2 {
		t.Errorf("31 secrets came in %d page(s)", pages)
	}

	var gotVersions []string
	vpager := c.NewListSecretPropertiesVersionsPager("many", nil)
	for vpager.More() {
		page, err := vpager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			gotVersions = append(gotVersions, p.ID.Version())
		}
	}
	slices.Sort(versions)
	slices.Sort(gotVersions)
	if diff := cmp.Diff(versions, gotVersions); diff != "" {
		t.Errorf("listed versions (-want +got):\n%s", diff)
	}
}

func TestDisabledAndDateWindow(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	c := tv.secrets

	r, err := c.SetSecret(ctx, "off", azsecrets.SetSecretParameters{
		Value: to.Ptr("hidden"), SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSecret(ctx, "off", "", nil)
	if statusOf(err) != http.StatusForbidden || codeOf(err) != "Forbidden" {
		t.Fatalf("get disabled: %v", err)
	}
	resp, body := tv.do("GET", "/secrets/off/"+r.ID.Version()+"?api-version=7.5", tv.adminToken(), "")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `"innererror":{"code":"SecretDisabled"`) {
		t.Errorf("raw get disabled: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, "hidden") {
		t.Errorf("disabled secret's value in the error body")
	}
	// Properties of a disabled secret are still listed and can be enabled.
	if _, err := c.UpdateSecretProperties(ctx, "off", "", azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(true)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	if g, err := c.GetSecret(ctx, "off", "", nil); err != nil || *g.Value != "hidden" {
		t.Errorf("get after enabling: %v", err)
	}

	// nbf and exp are informational: reads outside the window succeed and
	// return the window so the reader can decide.
	future := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	past := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	for name, attrs := range map[string]*azsecrets.SecretAttributes{
		"not-yet-valid": {NotBefore: &future},
		"expired":       {Expires: &past},
	} {
		if _, err := c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr("v"), SecretAttributes: attrs}, nil); err != nil {
			t.Fatal(err)
		}
		g, err := c.GetSecret(ctx, name, "", nil)
		if err != nil {
			t.Errorf("get %s: %v", name, err)
			continue
		}
		if attrs.NotBefore != nil && !g.Attributes.NotBefore.Equal(future) {
			t.Errorf("%s: nbf = %v, want %v", name, g.Attributes.NotBefore, future)
		}
		if attrs.Expires != nil && !g.Attributes.Expires.Equal(past) {
			t.Errorf("%s: exp = %v, want %v", name, g.Attributes.Expires, past)
		}
	}
}

func TestSetSoftDeletedNameConflicts(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	c := tv.secrets
	if _, err := c.SetSecret(ctx, "gone", azsecrets.SetSecretParameters{Value: to.Ptr("v1")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSecret(ctx, "gone", nil); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, tv)
	_, err := c.SetSecret(ctx, "gone", azsecrets.SetSecretParameters{Value: to.Ptr("v2")}, nil)
	if statusOf(err) != http.StatusConflict || codeOf(err) != "Conflict" {
		t.Fatalf("set over soft-deleted name: %v", err)
	}
	if diff := cmp.Diff(before, snapshot(t, tv)); diff != "" {
		t.Errorf("state changed by a refused set (-before +after):\n%s", diff)
	}
}

func TestBackupRestore(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	c := tv.secrets
	for _, v := range []string{"a", "b", "c"} {
		if _, err := c.SetSecret(ctx, "kept", azsecrets.SetSecretParameters{Value: to.Ptr(v)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, tv)
	b, err := c.BackupSecret(ctx, "kept", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b.Value), `"a"`) || len(b.Value) < 64 {
		t.Errorf("backup blob looks unencrypted or empty")
	}

	// Restoring over an existing secret is refused.
	_, err = c.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: b.Value}, nil)
	if statusOf(err) != http.StatusConflict {
		t.Errorf("restore over existing: %v", err)
	}

	if _, err := c.DeleteSecret(ctx, "kept", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedSecret(ctx, "kept", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: b.Value}, nil); err != nil {
		t.Fatalf("RestoreSecret: %v", err)
	}
	if diff := cmp.Diff(before, snapshot(t, tv)); diff != "" {
		t.Errorf("restored state differs (-before +after):\n%s", diff)
	}

	// A blob altered in one byte, or made by a vault with another master
	// key, does not restore.
	bad := slices.Clone(b.Value)
	bad[len(bad)/2] ^= 1
	tv2 := startVault(t, "")
	for name, blob := range map[string][]byte{"tampered": bad, "other key": b.Value} {
		target := tv.secrets
		if name == "other key" {
			target = tv2.secrets
		} else {
			c.DeleteSecret(ctx, "kept", nil)
			c.PurgeDeletedSecret(ctx, "kept", nil)
		}
		_, err := target.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: blob}, nil)
		if statusOf(err) != http.StatusBadRequest || codeOf(err) != "BadParameter" {
			t.Errorf("%s blob: %v", name, err)
		}
	}
}

// snapshot reads every secret, live and deleted, with every version and
// value, so tests can prove that a refused request changed nothing.
func snapshot(t *testing.T, tv *testVault) map[string]string {
	t.Helper()
	return snapshotOf(t, tv.secrets)
}

// snapshotOf is snapshot of the vault c addresses.
func snapshotOf(t *testing.T, c *azsecrets.Client) map[string]string {
	t.Helper()
	ctx := ctxT(t)
	out := map[string]string{}
	pager := c.NewListSecretPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			vp := c.NewListSecretPropertiesVersionsPager(p.ID.Name(), nil)
			for vp.More() {
				vpage, err := vp.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range vpage.Value {
					out[p.ID.Name()+"/"+v.ID.Version()] = describeVersion(t, c, p.ID.Name(), v)
				}
			}
		}
	}
	for _, name := range deletedNames(t, c) {
		out["deleted/"+name] = "deleted"
	}
	return out
}

func describeVersion(t *testing.T, c *azsecrets.Client, name string, p *azsecrets.SecretProperties) string {
	a := p.Attributes
	desc := fmt.Sprintf("enabled=%v ct=%v tags=%v created=%v updated=%v", *a.Enabled, deref(p.ContentType), tagValues(p.Tags), a.Created.Unix(), a.Updated.Unix())
	if *a.Enabled {
		s, err := c.GetSecret(ctxT(t), name, p.ID.Version(), nil)
		if err != nil {
			t.Fatal(err)
		}
		desc += " value=" + *s.Value
	}
	return desc
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func tagValues(tags map[string]*string) map[string]string {
	out := map[string]string{}
	for k, v := range tags {
		out[k] = deref(v)
	}
	return out
}
