package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/pki"
	"github.com/keygate/keygate/internal/server"
)

// createTeamVault creates the vault team with a retention of days, the
// administrator allowed everything, a reader allowed get, a network rule,
// a location and tags, and returns its document.
func (tv *testVault) createTeamVault(days int, extra map[string]any) map[string]any {
	tv.t.Helper()
	p := map[string]any{
		"tenantId": tv.creds.TenantID, "softDeleteRetentionInDays": days,
		"accessPolicies": []any{
			map[string]any{"tenantId": tv.creds.TenantID, "objectId": tv.adminObjectID(),
				"permissions": map[string]any{"secrets": []string{"all"}, "certificates": []string{"all"}}},
			map[string]any{"tenantId": tv.creds.TenantID, "objectId": "11111111-2222-3333-4444-555555555555",
				"permissions": map[string]any{"secrets": []string{"get"}}},
		},
		"networkAcls": map[string]any{"defaultAction": "Allow", "bypass": "None",
			"ipRules": []any{map[string]any{"value": "10.20.0.0/16"}}},
	}
	for k, v := range extra {
		p[k] = v
	}
	return tv.mustManage(http.StatusCreated, "PUT", "/vaults/team", map[string]any{
		"location": "westeurope", "tags": map[string]any{"env": "test"}, "properties": p,
	})
}

// managementState is what the management API shows of every vault, live
// and deleted, so that tests can prove a refused request changed nothing.
func (tv *testVault) managementState() []any {
	tv.t.Helper()
	return []any{
		tv.mustManage(http.StatusOK, "GET", "/vaults", nil),
		tv.mustManage(http.StatusOK, "GET", "/deletedVaults", nil),
	}
}

// errorOf returns the code and message of a management error document.
func errorOf(doc map[string]any) (code, msg string) {
	e, _ := doc["error"].(map[string]any)
	code, _ = e["code"].(string)
	msg, _ = e["message"].(string)
	return code, msg
}

// TestVaultSoftDeleteAndRecover deletes a vault holding secrets, a
// deleted secret and a certificate: it serves nothing, is listed as
// deleted with Azure's shape, holds its name, and comes back whole when
// recovered. Deleted again and purged, it is gone and its name is free.
func TestVaultSoftDeleteAndRecover(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	created := tv.createTeamVault(30, nil)
	uri := props(created)["vaultUri"].(string)
	team := tv.secretsAt(uri, false)
	certs := tv.certificatesAt(uri)

	// Two versions of a secret, a deleted secret, and a certificate.
	for _, v := range []string{"first", "second"} {
		if _, err := team.SetSecret(ctx, "db", azsecrets.SetSecretParameters{Value: to.Ptr(v)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := team.SetSecret(ctx, "old", azsecrets.SetSecretParameters{Value: to.Ptr("gone")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := team.DeleteSecret(ctx, "old", nil); err != nil {
		t.Fatal(err)
	}
	pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, "Self", "team.example", "application/x-pem-file")
	if _, err := certs.CreateCertificate(ctx, "site", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
		t.Fatal(err)
	}
	waitOperation(t, certs, "site", notInProgress)
	cert, err := certs.GetCertificate(ctx, "site", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotOf(t, team)

	// Delete: the data plane answers as for a vault that never was.
	tv.mustManage(http.StatusOK, "DELETE", "/vaults/team", nil)
	deletedAt := tv.clock.Now().UTC().Truncate(time.Second)
	if _, err := team.GetSecret(ctx, "db", "", nil); statusOf(err) != http.StatusNotFound || codeOf(err) != "VaultNotFound" {
		t.Errorf("secret of a deleted vault: %v, want 404 VaultNotFound", err)
	}
	if _, err := certs.GetCertificate(ctx, "site", "", nil); statusOf(err) != http.StatusNotFound || codeOf(err) != "VaultNotFound" {
		t.Errorf("certificate of a deleted vault: %v, want 404 VaultNotFound", err)
	}
	tv.mustManage(http.StatusNotFound, "GET", "/vaults/team", nil)

	// Listed and shown as Azure's DeletedVault.
	want := map[string]any{
		"id": "/management/deletedVaults/team", "name": "team", "type": "Microsoft.KeyVault/deletedVaults",
		"properties": map[string]any{
			"vaultId": "/management/vaults/team", "location": "westeurope",
			"deletionDate":           deletedAt.Format(time.RFC3339),
			"scheduledPurgeDate":     deletedAt.Add(30 * 24 * time.Hour).Format(time.RFC3339),
			"tags":                   map[string]any{"env": "test"},
			"purgeProtectionEnabled": false,
		},
	}
	if diff := cmp.Diff(want, tv.mustManage(http.StatusOK, "GET", "/deletedVaults/team", nil)); diff != "" {
		t.Errorf("deleted vault (-want +got):\n%s", diff)
	}
	list := tv.mustManage(http.StatusOK, "GET", "/deletedVaults", nil)["value"].([]any)
	if len(list) != 1 || cmp.Diff(want, list[0]) != "" {
		t.Errorf("deleted vault list: %v", list)
	}
	if live := tv.mustManage(http.StatusOK, "GET", "/vaults", nil)["value"].([]any); len(live) != 1 {
		t.Errorf("live vaults after delete: %v", live)
	}

	// Bad requests while it is deleted, each refused, changing nothing.
	state := tv.managementState()
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		code               string
		says               []string
	}{
		{"create over the deleted name", "PUT", "/vaults/team", map[string]any{}, http.StatusConflict, "ConflictError",
			[]string{"deleted vault", want["properties"].(map[string]any)["scheduledPurgeDate"].(string), "recover", "purge"}},
		{"recover a live vault", "PUT", "/vaults/default", map[string]any{"properties": map[string]any{"createMode": "recover"}},
			http.StatusConflict, "Conflict", []string{"properties.createMode", "not deleted"}},
		{"recover an unknown vault", "PUT", "/vaults/nosuch", map[string]any{"properties": map[string]any{"createMode": "recover"}},
			http.StatusNotFound, "NotFound", []string{"properties.createMode", "nosuch"}},
		{"unknown create mode", "PUT", "/vaults/team", map[string]any{"properties": map[string]any{"createMode": "restore"}},
			http.StatusBadRequest, "BadRequest", []string{"properties.createMode", "restore"}},
		{"recover with a bad property", "PUT", "/vaults/team", map[string]any{"properties": map[string]any{
			"createMode": "recover", "softDeleteRetentionInDays": 5}}, http.StatusBadRequest, "BadRequest", []string{"softDeleteRetentionInDays"}},
		{"purge a live vault", "POST", "/deletedVaults/default/purge", nil, http.StatusConflict, "Conflict", []string{"default", "not deleted"}},
		{"purge an unknown vault", "POST", "/deletedVaults/nosuch/purge", nil, http.StatusNotFound, "NotFound", []string{"nosuch"}},
		{"show a live vault as deleted", "GET", "/deletedVaults/default", nil, http.StatusNotFound, "NotFound", []string{"not deleted"}},
		{"delete twice", "DELETE", "/vaults/team", nil, http.StatusNotFound, "NotFound", []string{"already deleted"}},
		{"change a deleted vault", "PATCH", "/vaults/team", map[string]any{"properties": map[string]any{"softDeleteRetentionInDays": 9}},
			http.StatusNotFound, "NotFound", []string{"team"}},
	} {
		status, doc := tv.manage(tc.method, tc.path, tc.body)
		code, msg := errorOf(doc)
		if status != tc.status || code != tc.code {
			t.Errorf("%s: %d %s %q, want %d %s", tc.name, status, code, msg, tc.status, tc.code)
		}
		for _, s := range tc.says {
			if !strings.Contains(msg, s) {
				t.Errorf("%s: message %q does not say %q", tc.name, msg, s)
			}
		}
	}
	if diff := cmp.Diff(state, tv.managementState()); diff != "" {
		t.Errorf("refused requests changed the vaults (-before +after):\n%s", diff)
	}

	// Recover: everything comes back as it was.
	tv.clock.Advance(time.Hour)
	recovered := tv.mustManage(http.StatusOK, "PUT", "/vaults/team",
		map[string]any{"location": "westeurope", "properties": map[string]any{"createMode": "recover"}})
	if diff := cmp.Diff(created, recovered); diff != "" {
		t.Errorf("recovered vault (-created +recovered):\n%s", diff)
	}
	if diff := cmp.Diff(before, snapshotOf(t, team)); diff != "" {
		t.Errorf("recovered secrets (-before +after):\n%s", diff)
	}
	if got, err := certs.GetCertificate(ctx, "site", "", nil); err != nil || *got.ID != *cert.ID || string(got.X509Thumbprint) != string(cert.X509Thumbprint) {
		t.Errorf("recovered certificate: %v", err)
	}
	if _, err := team.GetDeletedSecret(ctx, "old", nil); err != nil {
		t.Errorf("the recovered vault lost its deleted secret: %v", err)
	}
	tv.mustManage(http.StatusNotFound, "GET", "/deletedVaults/team", nil)

	// Delete again and purge: gone, name free, a new vault is empty.
	tv.mustManage(http.StatusOK, "DELETE", "/vaults/team", nil)
	purged := tv.mustManage(http.StatusOK, "POST", "/deletedVaults/team/purge", nil)
	if purged["name"] != "team" {
		t.Errorf("purge answered %v", purged)
	}
	tv.mustManage(http.StatusNotFound, "GET", "/deletedVaults/team", nil)
	tv.createTeamVault(30, nil)
	if got := snapshotOf(t, team); len(got) != 0 {
		t.Errorf("a new vault of a purged vault's name holds %v", got)
	}
	if _, err := certs.GetCertificate(ctx, "site", "", nil); statusOf(err) != http.StatusNotFound || codeOf(err) != "CertificateNotFound" {
		t.Errorf("a new vault of a purged vault's name holds its certificate: %v", err)
	}

	for _, op := range []string{"VaultDelete", "VaultRecover", "DeletedVaultGet", "DeletedVaultList", "DeletedVaultPurge"} {
		tv.mustFindAudit(op, func(r audit.Record) bool {
			return r.Source == audit.SourceManagement && r.Operation == op && r.Status == http.StatusOK
		})
	}
}

// TestVaultPurgeProtection turns purge protection on: it cannot be turned
// off, deleted objects and the deleted vault cannot be purged early, and
// the purger removes the vault once its scheduled date has come.
func TestVaultPurgeProtection(t *testing.T) {
	tv := startVault(t, "", func(c *server.Config) { c.PurgeInterval = 20 * time.Millisecond })
	ctx := ctxT(t)
	doc := tv.createTeamVault(7, map[string]any{"enablePurgeProtection": true})
	if props(doc)["enablePurgeProtection"] != true {
		t.Fatalf("created vault: %v", doc)
	}
	team := tv.secretsAt(props(doc)["vaultUri"].(string), false)
	if _, err := team.SetSecret(ctx, "db", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	d, err := team.DeleteSecret(ctx, "db", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Key Vault's word for 7 days' retention that cannot be cut short.
	if level := deref((*string)(d.Attributes.RecoveryLevel)); level != "CustomizedRecoverable" {
		t.Errorf("recoveryLevel %q under purge protection, want CustomizedRecoverable", level)
	}

	// Refused: an early purge of a deleted secret, turning protection off.
	secrets := snapshotOf(t, team)
	state := tv.managementState()
	if _, err := team.PurgeDeletedSecret(ctx, "db", nil); statusOf(err) != http.StatusForbidden ||
		!strings.Contains(err.Error(), "purge protection") {
		t.Errorf("early purge of a deleted secret: %v, want 403 naming purge protection", err)
	}
	status, body := tv.manage("PATCH", "/vaults/team", map[string]any{"properties": map[string]any{"enablePurgeProtection": false}})
	if _, msg := errorOf(body); status != http.StatusBadRequest || !strings.Contains(msg, "enablePurgeProtection") {
		t.Errorf("turning purge protection off: %d %v", status, body)
	}
	if diff := cmp.Diff(secrets, snapshotOf(t, team)); diff != "" {
		t.Errorf("refused purge changed the secrets (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(state, tv.managementState()); diff != "" {
		t.Errorf("refused requests changed the vaults (-before +after):\n%s", diff)
	}

	// Refused: an early purge of the deleted vault.
	tv.mustManage(http.StatusOK, "DELETE", "/vaults/team", nil)
	state = tv.managementState()
	status, body = tv.manage("POST", "/deletedVaults/team/purge", nil)
	if code, msg := errorOf(body); status != http.StatusForbidden || code != "Forbidden" ||
		!strings.Contains(msg, "purge protection") || !strings.Contains(msg, "scheduled purge date") {
		t.Errorf("early purge of a protected vault: %d %v", status, body)
	}
	if diff := cmp.Diff(state, tv.managementState()); diff != "" {
		t.Errorf("refused purge changed the vaults (-before +after):\n%s", diff)
	}
	if d := tv.mustManage(http.StatusOK, "GET", "/deletedVaults/team", nil); props(d)["purgeProtectionEnabled"] != true {
		t.Errorf("deleted vault: %v", d)
	}

	// Past the scheduled date the purger removes it, and the name is free.
	tv.clock.Advance(7*24*time.Hour + time.Minute)
	tv.connect()
	waitFor(t, func() bool {
		status, _ := tv.manage("GET", "/deletedVaults/team", nil)
		return status == http.StatusNotFound
	})
	tv.createTeamVault(7, nil)
	if got := snapshotOf(t, tv.secretsAt(props(doc)["vaultUri"].(string), false)); len(got) != 0 {
		t.Errorf("a new vault of a purged vault's name holds %v", got)
	}
}
