package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/keygate/keygate/internal/pki"
)

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCertificateCommands(t *testing.T) {
	creds := "--credentials=" + startServer(t)
	dir := t.TempDir()

	// A keygate-ca issuer and a certificate it issues.
	mustRun(t, "certificate", "issuer", "create", creds, "--name", "corp")
	policy := writeFile(t, dir, "policy.json", []byte(`{
		"issuer": {"name": "corp"},
		"key_props": {"kty": "EC", "crv": "P-256", "exportable": true},
		"secret_props": {"contentType": "application/x-pem-file"},
		"x509_props": {"subject": "CN=web.example", "sans": {"dns_names": ["web.example"]}, "validity_months": 6}
	}`))
	var created struct {
		ID  string `json:"id"`
		CER []byte `json:"cer"`
	}
	decode(t, mustRun(t, "certificate", "create", creds, "--name", "web", "--policy", policy), &created)
	if !strings.Contains(created.ID, "/certificates/web/") {
		t.Fatalf("create printed id %q", created.ID)
	}

	// Download and verify against the downloaded chain.
	certFile, chainFile := filepath.Join(dir, "web.pem"), filepath.Join(dir, "chain.pem")
	mustRun(t, "certificate", "download", creds, "--name", "web", "--file", certFile)
	mustRun(t, "certificate", "issuer", "chain", creds, "--name", "corp", "--file", chainFile)
	leaf := readPEMCerts(t, certFile)[0]
	chain := readPEMCerts(t, chainFile)
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(chain[1])
	inters.AddCert(chain[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: "web.example"}); err != nil {
		t.Errorf("downloaded certificate does not verify against the issuer's chain: %v", err)
	}

	// Policy show and set.
	if out := mustRun(t, "certificate", "policy", "show", creds, "--name", "web"); !strings.Contains(out, `"validity_months": 6`) {
		t.Errorf("policy show printed:\n%s", out)
	}
	newPolicy := writeFile(t, dir, "new.json", []byte(`{"x509_props": {"validity_months": 3}}`))
	if out := mustRun(t, "certificate", "policy", "set", creds, "--name", "web", "--policy", newPolicy); !strings.Contains(out, `"validity_months": 3`) {
		t.Errorf("policy set printed:\n%s", out)
	}

	// Import a PFX with a password.
	ca, _ := pki.NewCA("cli test", time.Now())
	key, _ := pki.GenerateKey(pki.KeySpec{Type: pki.KeyTypeRSA, Size: 2048})
	tmpl, _ := (&pki.X509Props{Subject: "CN=imported.example", ValidityMonths: 1}).Template(time.Now())
	imported, _ := ca.Sign(tmpl, key.Public())
	pfx, _ := pkcs12.Modern2023.Encode(key, imported, []*x509.Certificate{ca.Cert}, "pw")
	pfxFile := writeFile(t, dir, "in.pfx", pfx)
	if out := mustRun(t, "certificate", "import", creds, "--name", "imported", "--file", pfxFile, "--password", "pw"); !strings.Contains(out, "/certificates/imported/") {
		t.Errorf("import printed:\n%s", out)
	}
	if _, err := run(t, "certificate", "import", creds, "--name", "imported", "--file", pfxFile, "--password", "nope"); err == nil ||
		!strings.Contains(err.Error(), "pwd") {
		t.Errorf("import with a wrong password: %v", err)
	}

	// Unknown issuer: CSR out, signed certificate merged in.
	unknown := writeFile(t, dir, "unknown.json", []byte(`{"issuer": {"name": "Unknown"}, "x509_props": {"subject": "CN=ext.example"}}`))
	if out := mustRun(t, "certificate", "create", creds, "--name", "ext", "--policy", unknown); !strings.Contains(out, "inProgress") {
		t.Errorf("create for Unknown printed:\n%s", out)
	}
	csrFile := filepath.Join(dir, "ext.csr")
	mustRun(t, "certificate", "pending", "show", creds, "--name", "ext", "--csr-file", csrFile)
	block, _ := pem.Decode(mustReadFile(t, csrFile))
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ = (&pki.X509Props{Subject: "CN=ext.example", ValidityMonths: 1}).Template(time.Now())
	signed, _ := ca.Sign(tmpl, csr.PublicKey)
	signedFile := writeFile(t, dir, "ext.pem", pki.CertsPEM([]*x509.Certificate{signed, ca.Cert}))
	mustRun(t, "certificate", "merge", creds, "--name", "ext", "--file", signedFile)

	var list []struct{ ID string }
	decode(t, mustRun(t, "certificate", "list", creds), &list)
	if len(list) != 3 {
		t.Errorf("list printed %d certificates, want 3", len(list))
	}
	mustRun(t, "certificate", "delete", creds, "--name", "ext")
	decode(t, mustRun(t, "certificate", "list", creds), &list)
	if len(list) != 2 {
		t.Errorf("list after delete printed %d certificates, want 2", len(list))
	}
}

func readPEMCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	certs, err := pki.DecodePEMCerts(mustReadFile(t, path))
	if err != nil || len(certs) == 0 {
		t.Fatalf("%s: %v", path, err)
	}
	return certs
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
