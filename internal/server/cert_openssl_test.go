package server_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"

	"github.com/keygate/keygate/internal/pki"
)

// TestOpenSSLOpensDownloadedSecrets downloads certificates' secrets as a
// client does and opens them with Debian's openssl: the PFX with
// `openssl pkcs12` (it must not be RC2, which OpenSSL 3 refuses), the PEM
// with `openssl x509` and `openssl pkey`.
func TestOpenSSLOpensDownloadedSecrets(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed; scripts/test.sh installs it")
	}
	tv := startVault(t, "")
	c := tv.certs()
	dir := t.TempDir()
	for _, tc := range []struct{ name, contentType string }{
		{"pfx-download", "application/x-pkcs12"}, {"pem-download", "application/x-pem-file"},
	} {
		pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeRSA, Size: 2048}, "Self", tc.name+".example", tc.contentType)
		if _, err := c.CreateCertificate(ctxT(t), tc.name, azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
			t.Fatal(err)
		}
		waitOperation(t, c, tc.name, notInProgress)
		value, ct := tv.secretOf(t, tc.name, "")
		if ct != tc.contentType {
			t.Fatalf("content type %q", ct)
		}
		path := filepath.Join(dir, tc.name)
		if ct == "application/x-pkcs12" {
			der, _ := base64.StdEncoding.DecodeString(value)
			os.WriteFile(path, der, 0o600)
			out, err := exec.Command(openssl, "pkcs12", "-in", path, "-passin", "pass:", "-nodes").CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte("PRIVATE KEY")) || !bytes.Contains(out, []byte("BEGIN CERTIFICATE")) {
				t.Errorf("openssl pkcs12: %v\n%s", err, out)
			}
			info, _ := exec.Command(openssl, "pkcs12", "-in", path, "-passin", "pass:", "-info", "-noout").CombinedOutput()
			if bytes.Contains(bytes.ToLower(info), []byte("rc2")) {
				t.Errorf("the vault's PFX uses RC2:\n%s", info)
			}
			continue
		}
		os.WriteFile(path, []byte(value), 0o600)
		out, err := exec.Command(openssl, "x509", "-in", path, "-noout", "-subject").CombinedOutput()
		if err != nil || !strings.Contains(string(out), tc.name+".example") {
			t.Errorf("openssl x509: %v\n%s", err, out)
		}
		if out, err := exec.Command(openssl, "pkey", "-in", path, "-noout").CombinedOutput(); err != nil {
			t.Errorf("openssl pkey: %v\n%s", err, out)
		}
	}
}
