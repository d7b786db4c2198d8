package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/google/go-cmp/cmp"
)

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	tv := startVault(t, "")
	ctx := ctxT(t)
	if _, err := tv.secrets.SetSecret(ctx, "existing", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	token := tv.adminToken()
	manyTags := map[string]string{}
	for i := range 16 {
		manyTags[fmt.Sprint("t", i)] = "v"
	}
	tagsJSON, _ := json.Marshal(manyTags)

	const q = "?api-version=7.5"
	cases := []struct {
		name, method, path, body string
		field                    string // what the message must name
	}{
		{"bad name", "PUT", "/secrets/bad_name" + q, `{"value":"v"}`, "name"},
		{"long name", "PUT", "/secrets/" + strings.Repeat("a", 128) + q, `{"value":"v"}`, "name"},
		{"oversized value", "PUT", "/secrets/existing" + q, `{"value":"` + strings.Repeat("x", 25*1024+1) + `"}`, "value"},
		{"missing value", "PUT", "/secrets/existing" + q, `{"contentType":"x"}`, "value"},
		{"long content type", "PUT", "/secrets/existing" + q, `{"value":"v","contentType":"` + strings.Repeat("c", 256) + `"}`, "contentType"},
		{"too many tags", "PUT", "/secrets/existing" + q, `{"value":"v","tags":` + string(tagsJSON) + `}`, "tags"},
		{"long tag value", "PUT", "/secrets/existing" + q, `{"value":"v","tags":{"k":"` + strings.Repeat("v", 257) + `"}}`, "tags"},
		{"float timestamp", "PUT", "/secrets/existing" + q, `{"value":"v","attributes":{"nbf":1.5}}`, "attributes.nbf"},
		{"string enabled", "PATCH", "/secrets/existing/" + q, `{"attributes":{"enabled":"yes"}}`, "attributes.enabled"},
		{"exp before nbf", "PUT", "/secrets/existing" + q, `{"value":"v","attributes":{"nbf":2000000000,"exp":1000000000}}`, "attributes.exp"},
		{"unknown field", "PUT", "/secrets/existing" + q, `{"value":"v","colour":"red"}`, "colour"},
		{"malformed JSON", "PUT", "/secrets/existing" + q, `{"value":`, "body"},
		{"trailing data", "PUT", "/secrets/existing" + q, `{"value":"v"} {}`, "body"},
		{"body too large", "PUT", "/secrets/existing" + q, `{"value":"` + strings.Repeat("x", 2<<20) + `"}`, "body"},
		{"unknown api-version", "GET", "/secrets/existing/?api-version=1999-01-01", "", "api-version"},
		{"missing api-version", "GET", "/secrets/existing/", "", "api-version"},
		{"bad version", "GET", "/secrets/existing/xyz" + q, "", "version"},
		{"maxresults zero", "GET", "/secrets" + q + "&maxresults=0", "", "maxresults"},
		{"maxresults too big", "GET", "/secrets" + q + "&maxresults=26", "", "maxresults"},
		{"bad skiptoken", "GET", "/secrets" + q + "&$skiptoken=%25%25", "", "$skiptoken"},
		{"restore not base64", "POST", "/secrets/restore" + q, `{"value":"***"}`, "value"},
		{"restore garbage", "POST", "/secrets/restore" + q, `{"value":"AAAA"}`, "value"},
	}
	before := snapshot(t, tv)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tv.do(tc.method, tc.path, token, tc.body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %.300s", resp.StatusCode, body)
			}
			if resp.Header.Get("x-ms-error-code") != "BadParameter" {
				t.Errorf("x-ms-error-code = %q", resp.Header.Get("x-ms-error-code"))
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("error body is not JSON: %.300s", body)
			}
			if e.Error.Code != "BadParameter" || !strings.Contains(e.Error.Message, tc.field) {
				t.Errorf("error %q %q does not name %q", e.Error.Code, e.Error.Message, tc.field)
			}
		})
	}
	if diff := cmp.Diff(before, snapshot(t, tv)); diff != "" {
		t.Errorf("refused requests changed state (-before +after):\n%s", diff)
	}
}

func TestEveryAPIVersionIsAccepted(t *testing.T) {
	tv := startVault(t, "")
	token := tv.adminToken()
	for _, v := range []string{"7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"} {
		resp, body := tv.do("GET", "/secrets?api-version="+v, token, "")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("api-version %s: %d %s", v, resp.StatusCode, body)
		}
	}
	// The JavaScript SDK percent-encodes the query key.
	if resp, body := tv.do("GET", "/secrets?api%2Dversion=7.6", token, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("percent-encoded key: %d %s", resp.StatusCode, body)
	}
}
