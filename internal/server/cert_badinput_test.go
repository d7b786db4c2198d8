package server_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/google/go-cmp/cmp"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/keygate/keygate/internal/pki"
)

// TestCertificateBadInputChangesNothing sends each kind of bad
// certificate input: each is 400 BadParameter naming what is wrong, and
// the stored certificates, policies, operations and secrets are the same
// afterwards.
func TestCertificateBadInputChangesNothing(t *testing.T) {
	tv := startVault(t, "")
	c := tv.certs()
	ca := newOutsideCA(t)
	now := time.Now()
	good := ca.issue(t, "bad.example", pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, now.Add(-time.Hour), now.Add(24*time.Hour))
	expired := ca.issue(t, "old.example", pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, now.Add(-48*time.Hour), now.Add(-time.Hour))
	other, _ := pki.GenerateKey(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256})

	// Existing state the refused requests must leave alone: an imported
	// certificate and an operation waiting for its merge.
	goodPEM, _ := good.EncodePEM()
	if st := tv.rawJSON(t, "POST", "/certificates/existing/import"+cq, importBody(string(goodPEM), ""), nil); st != http.StatusOK {
		t.Fatalf("setup import: %d", st)
	}
	unknown := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, "Unknown", "wait.example", "application/x-pkcs12")
	if _, err := c.CreateCertificate(ctxT(t), "waiting", azcertificates.CreateCertificateParameters{CertificatePolicy: unknown}, nil); err != nil {
		t.Fatal(err)
	}
	waitOperation(t, c, "waiting", func(op azcertificates.CertificateOperation) bool { return len(op.CSR) > 0 })

	pfxPW, _ := pkcs12.Modern2023.Encode(good.Key, good.Certs[0], good.Certs[1:], "right")
	trust, _ := pkcs12.Modern2023.EncodeTrustStore(good.Certs, "")
	foreignPEM, _ := (&pki.Bundle{Key: other, Certs: good.Certs}).EncodePEM()
	expiredPEM, _ := expired.EncodePEM()
	b64 := base64.StdEncoding.EncodeToString

	cases := []struct {
		name, method, path, body string
		field                    string
	}{
		{"wrong PFX password", "POST", "/certificates/existing/import", importBody(b64(pfxPW), "wrong"), "pwd"},
		{"PFX password missing", "POST", "/certificates/existing/import", importBody(b64(pfxPW), ""), "pwd"},
		{"PFX without key", "POST", "/certificates/existing/import", importBody(b64(trust), ""), "no private key"},
		{"PEM without key", "POST", "/certificates/existing/import", importBody(string(pki.CertsPEM(good.Certs)), ""), "no private key"},
		{"key does not match", "POST", "/certificates/existing/import", importBody(string(foreignPEM), ""), "does not match"},
		{"malformed base64", "POST", "/certificates/existing/import", importBody("@@not base64@@", ""), "value"},
		{"malformed PEM", "POST", "/certificates/existing/import", importBody("-----BEGIN CERTIFICATE-----\n@@@\n-----END CERTIFICATE-----\n", ""), "PEM"},
		{"expired certificate", "POST", "/certificates/existing/import", importBody(string(expiredPEM), ""), "expired"},
		{"import policy disagrees with key", "POST", "/certificates/existing/import",
			`{"value":` + quote(string(goodPEM)) + `,"policy":{"key_props":{"kty":"RSA"}}}`, "kty"},
		{"unsupported key type", "POST", "/certificates/new/create", createBody(`"key_props":{"kty":"oct"}`), "kty"},
		{"unsupported RSA size", "POST", "/certificates/new/create", createBody(`"key_props":{"kty":"RSA","key_size":1024}`), "key_size"},
		{"EC with key_size", "POST", "/certificates/new/create", createBody(`"key_props":{"kty":"EC","crv":"P-256","key_size":256}`), "key_size"},
		{"unsupported curve", "POST", "/certificates/new/create", createBody(`"key_props":{"kty":"EC","crv":"P-256K"}`), "crv"},
		{"validity zero", "POST", "/certificates/new/create", createBody(`"x509_props":{"subject":"CN=a","validity_months":0}`), "validity_months"},
		{"trigger with both fields", "POST", "/certificates/new/create",
			createBody(`"lifetime_actions":[{"trigger":{"lifetime_percentage":80,"days_before_expiry":10},"action":{"action_type":"AutoRenew"}}]`), "trigger"},
		{"trigger percentage out of range", "POST", "/certificates/new/create",
			createBody(`"lifetime_actions":[{"trigger":{"lifetime_percentage":100},"action":{"action_type":"AutoRenew"}}]`), "lifetime_percentage"},
		{"trigger days out of range", "POST", "/certificates/new/create",
			createBody(`"lifetime_actions":[{"trigger":{"days_before_expiry":400},"action":{"action_type":"AutoRenew"}}]`), "days_before_expiry"},
		{"unknown action", "POST", "/certificates/new/create",
			createBody(`"lifetime_actions":[{"trigger":{"days_before_expiry":10},"action":{"action_type":"Explode"}}]`), "action_type"},
		{"unknown EKU", "POST", "/certificates/new/create", createBody(`"x509_props":{"subject":"CN=a","ekus":["serverAuth"]}`), "ekus"},
		{"unknown key usage", "POST", "/certificates/new/create", createBody(`"x509_props":{"subject":"CN=a","key_usage":["signEverything"]}`), "key_usage"},
		{"bad subject", "POST", "/certificates/new/create", createBody(`"x509_props":{"subject":"XX=a"}`), "subject"},
		{"bad DNS name", "POST", "/certificates/new/create", createBody(`"x509_props":{"subject":"CN=a","sans":{"dns_names":["bad name"]}}`), "dns_names"},
		{"bad IP SAN", "POST", "/certificates/new/create", createBody(`"x509_props":{"subject":"CN=a","sans":{"ipAddresses":["300.1.1.1"]}}`), "ipAddresses"},
		{"bad content type", "POST", "/certificates/new/create", createBody(`"secret_props":{"contentType":"text/plain"}`), "contentType"},
		{"no such issuer", "POST", "/certificates/new/create", createBody(`"issuer":{"name":"nobody"}`), "issuer.name"},
		{"AutoRenew with Unknown", "POST", "/certificates/new/create",
			`{"policy":{"issuer":{"name":"Unknown"},"x509_props":{"subject":"CN=a"},"lifetime_actions":[{"trigger":{"days_before_expiry":10},"action":{"action_type":"AutoRenew"}}]}}`, "AutoRenew"},
		{"policy update contradiction", "PATCH", "/certificates/existing/policy", `{"key_props":{"kty":"EC","crv":"P-384","key_size":2048}}`, "key_size"},
		{"merge of a foreign certificate", "POST", "/certificates/waiting/pending/merge", `{"x5c":["` + b64(good.Certs[0].Raw) + `"]}`, "x5c"},
		{"merge not base64", "POST", "/certificates/waiting/pending/merge", `{"x5c":["@@"]}`, "x5c[0]"},
		{"merge not a certificate", "POST", "/certificates/waiting/pending/merge", `{"x5c":["AAAA"]}`, "x5c"},
		{"reserved name", "POST", "/certificates/contacts/import", importBody(string(goodPEM), ""), "name"},
		{"bad contact email", "PUT", "/certificates/contacts", `{"contacts":[{"email":"not-an-address"}]}`, "email"},
		{"unknown issuer provider", "PUT", "/certificates/issuers/ext", `{"provider":"DigiCert"}`, "provider"},
		{"unknown field", "POST", "/certificates/new/create", `{"policy":{"x509_props":{"subject":"CN=a","colour":"red"}}}`, "colour"},
	}

	before := certSnapshot(t, tv)
	token := tv.adminToken()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tv.do(tc.method, tc.path+cq, token, tc.body)
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("x-ms-error-code") != "BadParameter" {
				t.Fatalf("status %d %q, want 400 BadParameter: %.300s", resp.StatusCode, resp.Header.Get("x-ms-error-code"), body)
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("error body is not JSON: %.300s", body)
			}
			if !strings.Contains(e.Error.Message, tc.field) {
				t.Errorf("message %q does not name %q", e.Error.Message, tc.field)
			}
			if strings.Contains(body, "right") || strings.Contains(body, "BEGIN PRIVATE KEY") {
				t.Errorf("error echoes secret material: %.300s", body)
			}
		})
	}
	if diff := cmp.Diff(before, certSnapshot(t, tv)); diff != "" {
		t.Errorf("refused requests changed state (-before +after):\n%s", diff)
	}
}

const cq = "?api-version=2025-07-01"

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func importBody(value, pwd string) string {
	if pwd == "" {
		return `{"value":` + quote(value) + `}`
	}
	return `{"value":` + quote(value) + `,"pwd":` + quote(pwd) + `}`
}

// createBody is a create request whose policy is Self with fields added,
// and a subject unless fields give the X.509 properties.
func createBody(fields string) string {
	if !strings.Contains(fields, "x509_props") {
		fields += `,"x509_props":{"subject":"CN=a"}`
	}
	return `{"policy":{"issuer":{"name":"Self"},` + fields + `}}`
}

// certSnapshot describes every certificate, version, policy, pending
// operation, issuer and secret of the default vault.
func certSnapshot(t *testing.T, tv *testVault) map[string]string {
	t.Helper()
	c := tv.certs()
	out := snapshot(t, tv)
	pager := c.NewListCertificatePropertiesPager(nil)
	var names []string
	for pager.More() {
		page, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			names = append(names, p.ID.Name())
		}
	}
	names = append(names, "waiting", "new")
	for _, name := range names {
		for _, v := range listVersionsOrNone(t, c, name) {
			got, err := c.GetCertificate(ctxT(t), name, v, nil)
			if err != nil {
				t.Fatal(err)
			}
			out["cert/"+name+"/"+v] = fmt.Sprintf("x5t=%x enabled=%v tags=%v", got.X509Thumbprint, *got.Attributes.Enabled, got.Tags)
		}
		var pol, op map[string]any
		tv.rawJSON(t, "GET", "/certificates/"+name+"/policy"+cq, "", &pol)
		tv.rawJSON(t, "GET", "/certificates/"+name+"/pending"+cq, "", &op)
		out["policy/"+name] = fmt.Sprint(pol)
		out["pending/"+name] = fmt.Sprint(op)
	}
	var issuers map[string]any
	tv.rawJSON(t, "GET", "/certificates/issuers"+cq, "", &issuers)
	out["issuers"] = fmt.Sprint(issuers)
	var contacts map[string]any
	tv.rawJSON(t, "GET", "/certificates/contacts"+cq, "", &contacts)
	out["contacts"] = fmt.Sprint(contacts)
	return out
}

func listVersionsOrNone(t *testing.T, c *azcertificates.Client, name string) []string {
	t.Helper()
	var out []string
	pager := c.NewListCertificatePropertiesVersionsPager(name, nil)
	for pager.More() {
		page, err := pager.NextPage(ctxT(t))
		if statusOf(err) == http.StatusNotFound {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			out = append(out, p.ID.Version())
		}
	}
	return out
}
