package keyvault

import (
	"strings"
	"testing"
)

func TestParseSecretID(t *testing.T) {
	good := []struct {
		in   string
		want SecretID
	}{
		{"https://v.vault.example/secrets/site", SecretID{"https://v.vault.example", "site", ""}},
		{"https://v.vault.example/secrets/site/", SecretID{"https://v.vault.example", "site", ""}},
		{"https://127.0.0.1:8443/secrets/site/0123456789abcdef0123456789ABCDEF",
			SecretID{"https://127.0.0.1:8443", "site", "0123456789abcdef0123456789ABCDEF"}},
	}
	for _, tc := range good {
		got, err := ParseSecretID(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSecretID(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	bad := map[string]string{
		"http://v.example/secrets/a":          "https",
		"https://v.example/keys/a":            "want https://VAULT/secrets/NAME",
		"https://v.example/certificates/a":    "use its secret",
		"https://v.example/secrets/a_b":       "not a secret name",
		"https://v.example/secrets/a/v1":      "not a secret version",
		"https://v.example/secrets/a?x=1":     "nothing after the path",
		"https://v.example/secrets/a/b/c/d":   "want https://VAULT/secrets/NAME",
		"v.example/secrets/a":                 "not a URL",
		"https://user:pw@v.example/secrets/a": "nothing after the path",
	}
	for in, want := range bad {
		_, err := ParseSecretID(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSecretID(%q) = %v, want an error saying %q", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("ParseSecretID(%q) error reveals the password: %v", in, err)
		}
	}
}
