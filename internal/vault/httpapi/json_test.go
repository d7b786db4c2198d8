package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecodeBodyNamesTheField(t *testing.T) {
	cases := []struct {
		body, want string
	}{
		{`{"value":1}`, "value: must be a string"},
		{`{"value":"v","attributes":{"exp":"soon"}}`, "attributes.exp: must be an integer (Unix seconds)"},
		{`{"value":"v","tags":{"a":1}}`, "tags: must be a string"},
		{`{"value":"v","extra":true}`, `body: unknown field "extra"`},
		{``, "body: empty"},
		{`{"value":`, "body: truncated JSON"},
		{`{"value" "v"}`, "body: malformed JSON"},
		{`{"value":"v"}x`, "body: unexpected data"},
		{`{"value":"` + strings.Repeat("x", 100) + `"}`, "body: larger than 64 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			var req setSecretRequest
			r := httptest.NewRequest(http.MethodPut, "/secrets/x", strings.NewReader(tc.body))
			limit := int64(1 << 20)
			if strings.Contains(tc.want, "larger") {
				limit = 64
			}
			err := decodeBody(httptest.NewRecorder(), r, limit, &req)
			if err == nil {
				t.Fatal("no error")
			}
			if err.Status != http.StatusBadRequest || !strings.Contains(err.Message, tc.want) {
				t.Errorf("got %d %q, want 400 containing %q", err.Status, err.Message, tc.want)
			}
		})
	}
}

// FuzzDecodeBody feeds arbitrary bodies to the request decoder: it must
// never panic, and every refusal is a 400.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{`{"value":"v"}`, `{"value":"v","attributes":{"nbf":1,"exp":2},"tags":{"a":"b"}}`, `{`, `[]`, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req setSecretRequest
		r := httptest.NewRequest(http.MethodPut, "/secrets/x", strings.NewReader(body))
		if err := decodeBody(httptest.NewRecorder(), r, 4096, &req); err != nil && err.Status != http.StatusBadRequest {
			t.Fatalf("status %d for %q", err.Status, body)
		}
	})
}
