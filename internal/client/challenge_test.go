package client

import (
	"strings"
	"testing"
)

func TestChallengeScope(t *testing.T) {
	for _, tc := range []struct{ header, want, err string }{
		{`Bearer authorization="https://a/t", resource="https://vault.example:8443"`, "https://vault.example:8443/.default", ""},
		{`Bearer authorization="https://a/t", resource="https://vault.example/"`, "https://vault.example/.default", ""},
		{`Bearer authorization="https://a/t", scope="https://vault.example/.default"`, "https://vault.example/.default", ""},
		{`Basic realm="x"`, "", "no bearer challenge"},
		{``, "", "no bearer challenge"},
		{`Bearer authorization="https://a/t"`, "", "names no resource"},
	} {
		got, err := ChallengeScope(tc.header)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ChallengeScope(%q) = %q, %v; want %q, error containing %q", tc.header, got, err, tc.want, tc.err)
		}
	}
}
