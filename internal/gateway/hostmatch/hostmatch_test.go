package hostmatch

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"www.example.test", "www.example.test", true},
		{"www.example.test", "WWW.Example.Test", true},
		{"www.example.test", "www.example.test:8443", true},
		{"www.example.test", "www.example.test.", true},
		{"www.example.test", "ww.example.test", false},
		{"*.example.test", "a.example.test", true},
		{"*.example.test", "a.b.example.test", true},
		{"*.example.test", "example.test", false},
		{"*.example.test", ".example.test", false},
		{"*.contoso-*.com", "shop.contoso-eu.com", true},
		{"*.contoso-*.com", "shop.contoso.com", false},
		{"w??.example.test", "web.example.test", true},
		{"w??.example.test", "we.example.test", false},
		{"w??.example.test", "webb.example.test", false},
		{"*.example.*", "a.example.org", true},
		{"127.0.0.1", "127.0.0.1:443", true},
		{"::1", "[::1]:443", true},
	}
	for _, tc := range tests {
		if got := Match(tc.pattern, tc.host); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.host, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	valid := []string{"www.example.test", "*.contoso-*.com", "*.contoso.*", "????.contoso.com", "w??.contoso*.edu.*"}
	for _, p := range valid {
		if err := Validate(p); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", p, err)
		}
	}
	invalid := []string{"", "*.contoso.*.*.com", "????.contoso.*", "*?.contoso.com", "**.contoso.com", "a..b", "a_b.com", "a/b.com"}
	for _, p := range invalid {
		if err := Validate(p); err == nil {
			t.Errorf("Validate(%q) = nil, want an error", p)
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("*.example.test", "a.example.test")
	f.Add("w??.*.test", "web.x.test:443")
	f.Fuzz(func(t *testing.T, pattern, host string) {
		if len(pattern) > 64 || len(host) > 64 {
			return
		}
		Match(pattern, host)
	})
}
