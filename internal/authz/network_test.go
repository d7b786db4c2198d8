package authz

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNormalizeNetworkACLs(t *testing.T) {
	got, err := NetworkACLs{
		DefaultAction: "deny",
		Bypass:        "azureservices",
		IPRules: []IPRule{
			{"10.1.2.3"}, {"10.1.2.0/24"}, {"10.1.2.77/24"}, {"2001:db8::1"},
			{"2001:DB8::/32"}, {"::ffff:192.0.2.1"}, {" 192.0.2.0/25 "}, {"10.1.2.3/32"},
		},
	}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := NetworkACLs{
		DefaultAction: ActionDeny, Bypass: BypassAzureServices,
		IPRules: []IPRule{
			{"10.1.2.3/32"}, {"10.1.2.0/24"}, {"2001:db8::1/128"}, {"2001:db8::/32"},
			{"192.0.2.1/32"}, {"192.0.2.0/25"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Normalize (-want +got):\n%s", diff)
	}

	zero, err := NetworkACLs{}.Normalize()
	if err != nil || zero.DefaultAction != ActionAllow || zero.Bypass != BypassNone || zero.IPRules == nil {
		t.Errorf("Normalize of the zero value = %+v, %v", zero, err)
	}
}

func TestNormalizeNetworkACLsErrors(t *testing.T) {
	many := make([]IPRule, 1001)
	for i := range many {
		many[i] = IPRule{"10.0.0.1"}
	}
	for _, tc := range []struct {
		acls  NetworkACLs
		field string
	}{
		{NetworkACLs{DefaultAction: "Block"}, "networkAcls.defaultAction"},
		{NetworkACLs{Bypass: "Everyone"}, "networkAcls.bypass"},
		{NetworkACLs{IPRules: []IPRule{{"10.0.0.1"}, {"10.0.0.300"}}}, "networkAcls.ipRules[1].value"},
		{NetworkACLs{IPRules: []IPRule{{""}}}, "networkAcls.ipRules[0].value"},
		{NetworkACLs{IPRules: []IPRule{{"10.0.0.0/33"}}}, "networkAcls.ipRules[0].value"},
		{NetworkACLs{IPRules: []IPRule{{"fe80::1%eth0"}}}, "networkAcls.ipRules[0].value"},
		{NetworkACLs{IPRules: []IPRule{{"example.com"}}}, "networkAcls.ipRules[0].value"},
		{NetworkACLs{IPRules: many}, "networkAcls.ipRules"},
	} {
		_, err := tc.acls.Normalize()
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("Normalize(%+v) = %v, want an error naming %s", tc.acls.IPRules, err, tc.field)
		}
	}
}

func TestCheckNetwork(t *testing.T) {
	deny := NetworkACLs{DefaultAction: ActionDeny, Bypass: BypassNone,
		IPRules: []IPRule{{"127.0.0.1/32"}, {"10.8.0.0/16"}, {"2001:db8::/64"}}}
	bypass := deny
	bypass.Bypass = BypassAzureServices
	allow := deny
	allow.DefaultAction = ActionAllow

	for _, tc := range []struct {
		acls NetworkACLs
		addr string
		want Verdict
	}{
		{deny, "127.0.0.1", NetworkAllowed},
		{deny, "127.0.0.2", NetworkDenied},
		{deny, "10.8.255.1", NetworkAllowed},
		{deny, "10.9.0.1", NetworkDenied},
		{deny, "::ffff:10.8.0.1", NetworkAllowed},
		{deny, "2001:db8::42", NetworkAllowed},
		{deny, "2001:db8:0:1::42", NetworkDenied},
		{deny, "::1", NetworkDenied},
		{deny, "", NetworkDenied},
		{bypass, "127.0.0.2", NetworkDeniedUnlessService},
		{bypass, "127.0.0.1", NetworkAllowed},
		{allow, "127.0.0.2", NetworkAllowed},
		{NetworkACLs{}, "192.0.2.1", NetworkAllowed},
	} {
		var addr netip.Addr
		if tc.addr != "" {
			addr = netip.MustParseAddr(tc.addr)
		}
		if got := CheckNetwork(tc.acls, addr); got != tc.want {
			t.Errorf("CheckNetwork(%s %s, %s) = %v, want %v", tc.acls.DefaultAction, tc.acls.Bypass, tc.addr, got, tc.want)
		}
	}
}

func TestPeerAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.2:4431":        "127.0.0.2",
		"[::1]:80":              "::1",
		"[::ffff:10.0.0.1]:443": "10.0.0.1",
		"[fe80::1%eth0]:443":    "fe80::1",
		"10.0.0.9":              "10.0.0.9",
		"@":                     "invalid IP",
	} {
		if got := PeerAddr(in).String(); got != want {
			t.Errorf("PeerAddr(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestRolePermissions(t *testing.T) {
	want := Permissions{Secrets: []string{SecretGet}}
	for _, role := range []string{
		"Key Vault Secrets User",
		"key vault secrets user",
		RoleSecretsUserID,
		"/subscriptions/0000/providers/Microsoft.Authorization/roleDefinitions/" + RoleSecretsUserID,
	} {
		got, err := RolePermissions(role)
		if err != nil {
			t.Fatalf("RolePermissions(%q): %v", role, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("RolePermissions(%q) (-want +got):\n%s", role, diff)
		}
	}
	for _, role := range []string{"Key Vault Administrator", "", "Key Vault Secrets Officer"} {
		if _, err := RolePermissions(role); err == nil || !strings.Contains(err.Error(), "Key Vault Secrets User") {
			t.Errorf("RolePermissions(%q) = %v, want an error naming the role accepted", role, err)
		}
	}
}

// FuzzParseIPRule feeds arbitrary rule values through parsing and
// normalization: no panic, and whatever is accepted parses again to the
// same range and matches its own address.
func FuzzParseIPRule(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32", "::ffff:1.2.3.4/120", "fe80::1%eth0", "", "1.2.3.4/33"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseIPRule(s)
		if err != nil {
			return
		}
		again, err := ParseIPRule(p.String())
		if err != nil || again != p {
			t.Fatalf("%q parsed to %v, which parses to %v, %v", s, p, again, err)
		}
		acls, err := NetworkACLs{DefaultAction: "Deny", IPRules: []IPRule{{s}}}.Normalize()
		if err != nil {
			t.Fatalf("Normalize refused %q that ParseIPRule took: %v", s, err)
		}
		if CheckNetwork(acls, p.Addr()) != NetworkAllowed {
			t.Fatalf("rule %v does not allow its own address", p)
		}
	})
}
