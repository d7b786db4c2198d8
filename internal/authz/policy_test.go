package authz_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/internal/authz"
)

const (
	tenantA = "0d9e7c1a-5b2f-4c3e-9a8d-6f1e2b3c4d5e"
	tenantB = "99999999-5b2f-4c3e-9a8d-6f1e2b3c4d5e"
	gateway = "aaaaaaaa-0000-4000-8000-000000000001"
	admin   = "aaaaaaaa-0000-4000-8000-000000000002"
)

func testPolicies() []authz.AccessPolicy {
	return []authz.AccessPolicy{
		{TenantID: tenantA, ObjectID: gateway, Permissions: authz.Permissions{
			Secrets: []string{"Get"},
		}},
		{TenantID: tenantA, ObjectID: admin, Permissions: authz.Permissions{
			Secrets:      []string{"all"},
			Certificates: []string{"get", "list", "import"},
		}},
	}
}

func TestAllows(t *testing.T) {
	policies := testPolicies()
	gw := authz.Principal{TenantID: tenantA, ObjectID: gateway}
	adm := authz.Principal{TenantID: tenantA, ObjectID: admin}
	tests := []struct {
		name     string
		p        authz.Principal
		kind     string
		perm     string
		policies []authz.AccessPolicy
		want     bool
	}{
		{"gateway gets secrets", gw, authz.KindSecrets, authz.SecretGet, policies, true},
		{"permission case ignored", gw, authz.KindSecrets, "GET", policies, true},
		{"object id case ignored", authz.Principal{TenantID: tenantA, ObjectID: "AAAAAAAA-0000-4000-8000-000000000001"}, authz.KindSecrets, "get", policies, true},
		{"gateway cannot set", gw, authz.KindSecrets, authz.SecretSet, policies, false},
		{"gateway cannot list", gw, authz.KindSecrets, authz.SecretList, policies, false},
		{"gateway has no certificate rights", gw, authz.KindCertificates, authz.CertificateGet, policies, false},
		{"all grants purge", adm, authz.KindSecrets, authz.SecretPurge, policies, true},
		{"all is per kind", adm, authz.KindCertificates, authz.CertificateDelete, policies, false},
		{"listed certificate permission", adm, authz.KindCertificates, authz.CertificateImport, policies, true},
		{"no key rights", adm, authz.KindKeys, "get", policies, false},
		{"unknown kind", adm, "storage", "get", policies, false},
		{"kind is case-sensitive", gw, "Secrets", "get", policies, false},
		{"empty permission", adm, authz.KindSecrets, "", policies, false},
		{"other tenant, same object", authz.Principal{TenantID: tenantB, ObjectID: gateway}, authz.KindSecrets, "get", policies, false},
		{"unknown object", authz.Principal{TenantID: tenantA, ObjectID: "nobody"}, authz.KindSecrets, "get", policies, false},
		{"empty principal", authz.Principal{}, authz.KindSecrets, "get", append(policies, authz.AccessPolicy{Permissions: authz.Permissions{Secrets: []string{"all"}}}), false},
		{"no policies", gw, authz.KindSecrets, "get", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := authz.Allows(tt.policies, tt.p, tt.kind, tt.perm); got != tt.want {
				t.Errorf("Allows(%+v, %q, %q) = %v, want %v", tt.p, tt.kind, tt.perm, got, tt.want)
			}
		})
	}
}

func TestAllowsDoesNotAllocate(t *testing.T) {
	policies := testPolicies()
	p := authz.Principal{TenantID: tenantA, ObjectID: admin}
	allocs := testing.AllocsPerRun(100, func() {
		authz.Allows(policies, p, authz.KindCertificates, "Import")
		authz.Allows(policies, p, authz.KindKeys, "get")
	})
	if allocs != 0 {
		t.Errorf("Allows allocates %v times per run, want 0", allocs)
	}
}

func TestValidate(t *testing.T) {
	good := func() authz.AccessPolicy {
		return authz.AccessPolicy{TenantID: tenantA, ObjectID: gateway, Permissions: authz.Permissions{
			Keys:         []string{"Get", "wrapKey", "unwrapkey"},
			Secrets:      []string{"get", "List", "ALL"},
			Certificates: []string{"get", "ManageIssuers"},
		}}
	}
	tests := []struct {
		name   string
		change func(*authz.AccessPolicy)
		want   string // error text; empty for valid
	}{
		{"valid", func(*authz.AccessPolicy) {}, ""},
		{"empty permissions", func(p *authz.AccessPolicy) { p.Permissions = authz.Permissions{} }, ""},
		{"no tenant", func(p *authz.AccessPolicy) { p.TenantID = "" }, "tenantId: must not be empty"},
		{"blank object", func(p *authz.AccessPolicy) { p.ObjectID = "  " }, "objectId: must not be empty"},
		{"misspelt secret permission", func(p *authz.AccessPolicy) {
			p.Permissions.Secrets = []string{"get", "list", "gett"}
		}, `permissions.secrets[2]: unknown permission "gett"`},
		{"certificate permission on secrets", func(p *authz.AccessPolicy) {
			p.Permissions.Secrets = []string{"import"}
		}, `permissions.secrets[0]: unknown permission "import"`},
		{"secret permission on certificates", func(p *authz.AccessPolicy) {
			p.Permissions.Certificates = []string{"get", "set"}
		}, `permissions.certificates[1]: unknown permission "set"`},
		{"unknown key permission", func(p *authz.AccessPolicy) {
			p.Permissions.Keys = []string{"fly"}
		}, `permissions.keys[0]: unknown permission "fly"`},
		{"empty name", func(p *authz.AccessPolicy) {
			p.Permissions.Secrets = []string{""}
		}, `permissions.secrets[0]: unknown permission ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good()
			tt.change(&p)
			err := p.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSecretPermissionsAllValidate(t *testing.T) {
	p := authz.AccessPolicy{TenantID: tenantA, ObjectID: gateway, Permissions: authz.Permissions{
		Keys:         authz.KeyPermissions(),
		Secrets:      authz.SecretPermissions(),
		Certificates: authz.CertificatePermissions(),
	}}
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate() of every known name: %v", err)
	}
	want := []string{"get", "list", "set", "delete", "recover", "backup", "restore", "purge", "all"}
	if diff := cmp.Diff(want, authz.SecretPermissions()); diff != "" {
		t.Errorf("SecretPermissions() (-want +got):\n%s", diff)
	}
}

func TestAccessPolicyJSON(t *testing.T) {
	// The shape of an entry of an Azure vault's accessPolicies.
	in := `{"tenantId":"` + tenantA + `","objectId":"` + gateway + `",` +
		`"permissions":{"secrets":["get"],"certificates":["get","list"]}}`
	var p authz.AccessPolicy
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	want := authz.AccessPolicy{TenantID: tenantA, ObjectID: gateway, Permissions: authz.Permissions{
		Secrets: []string{"get"}, Certificates: []string{"get", "list"},
	}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Fatalf("decoded policy (-want +got):\n%s", diff)
	}
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if string(out) != in {
		t.Errorf("Marshal = %s, want %s", out, in)
	}
}
