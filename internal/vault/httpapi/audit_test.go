package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestOperationName(t *testing.T) {
	for _, tc := range []struct{ method, pattern, want string }{
		{"GET", "GET /secrets/{name}/{$}", "SecretGet"},
		{"GET", "GET /secrets/{name}/{version}", "SecretGet"},
		{"PUT", "PUT /secrets/{name}", "SecretSet"},
		{"GET", "GET /secrets", "SecretList"},
		{"POST", "POST /deletedsecrets/{name}/recover", "SecretRecover"},
		{"DELETE", "DELETE /deletedsecrets/{name}", "SecretPurge"},
		// Certificate routes, whatever their wildcards are called.
		{"POST", "POST /certificates/{certificateName}/create", "CertificateCreate"},
		{"GET", "GET /certificates/{n}/pending", "CertificatePendingGet"},
		{"GET", "GET /certificates/issuers/{issuer}", "CertificateIssuerGet"},
		// Routes the table lacks get a name made the same way.
		{"POST", "POST /certificates/{name}/rekey", "CertificateRekey"},
		{"GET", "GET /keys/{name}/{version}/extra/{x}", "KeyGet"},
		{"GET", "", "Unknown"},
	} {
		if got := operationName(tc.method, tc.pattern); got != tc.want {
			t.Errorf("operationName(%s, %q) = %s, want %s", tc.method, tc.pattern, got, tc.want)
		}
	}
}

func TestObjectNameVersion(t *testing.T) {
	mux := http.NewServeMux()
	var name, version string
	record := func(w http.ResponseWriter, r *http.Request) { name, version = objectNameVersion(r) }
	mux.HandleFunc("GET /secrets/{name}/{version}", record)
	mux.HandleFunc("GET /certificates/issuers/{issuerName}", record)
	mux.HandleFunc("GET /secrets/{name}/{$}", record)
	for _, tc := range []struct{ path, name, version string }{
		{"/secrets/db/0123456789abcdef0123456789abcdef", "db", "0123456789abcdef0123456789abcdef"},
		{"/secrets/db/", "db", ""},
		{"/certificates/issuers/my-ca", "my-ca", ""},
	} {
		name, version = "", ""
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", tc.path, nil))
		if name != tc.name || version != tc.version {
			t.Errorf("%s: name %q version %q, want %q %q", tc.path, name, version, tc.name, tc.version)
		}
	}
}

// TestDescribe names requests by their paths, including those a route
// dispatches itself on a segment, as the certificate routes do.
func TestDescribe(t *testing.T) {
	mux := http.NewServeMux()
	var op, name, version string
	record := func(w http.ResponseWriter, r *http.Request) { op, name, version = describe(r) }
	for _, p := range []string{
		"GET /secrets/{name}/{version}", "GET /secrets/{name}/{$}", "GET /certificates/{name}/{version}",
		"POST /certificates/{name}/create", "GET /certificates/issuers", "GET /odd/{a}/{b}",
	} {
		mux.HandleFunc(p, record)
	}
	const v = "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct{ method, path, op, name, version string }{
		{"GET", "/secrets/db/" + v, "SecretGet", "db", v},
		{"GET", "/secrets/db/", "SecretGet", "db", ""},
		{"GET", "/certificates/web/" + v, "CertificateGet", "web", v},
		{"GET", "/certificates/web/policy", "CertificatePolicyGet", "web", ""},
		{"GET", "/certificates/web/pending", "CertificatePendingGet", "web", ""},
		{"GET", "/certificates/web/versions", "CertificateListVersions", "web", ""},
		{"GET", "/certificates/issuers/my-ca", "CertificateIssuerGet", "my-ca", ""},
		{"POST", "/certificates/web/create", "CertificateCreate", "web", ""},
		{"GET", "/certificates/issuers", "CertificateIssuerList", "", ""},
		{"GET", "/odd/x/y", "VaultGet", "x", "y"},
		{"GET", "/nowhere", "Unknown", "", ""},
	} {
		op, name, version = "Unknown", "", ""
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(tc.method, tc.path, nil))
		if op != tc.op || name != tc.name || version != tc.version {
			t.Errorf("%s %s: %s %q %q, want %s %q %q", tc.method, tc.path, op, name, version, tc.op, tc.name, tc.version)
		}
	}
}
