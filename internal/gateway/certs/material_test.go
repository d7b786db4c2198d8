package certs_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/gwtest"
)

func TestParseSecretBothContentTypes(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	for _, kt := range []gwtest.KeyType{gwtest.ECDSA, gwtest.RSA} {
		leaf := ca.Issue(t, kt, "site.example.test")
		for _, tc := range []struct{ contentType, value string }{
			{certs.ContentTypePKCS12, leaf.PFX(t, "")},
			{certs.ContentTypePEM, leaf.PEM(t)},
			{"", leaf.PEM(t)},
			{"", leaf.PFX(t, "")},
		} {
			m, err := certs.ParseSecret(tc.contentType, tc.value)
			if err != nil {
				t.Fatalf("ParseSecret(%q): %v", tc.contentType, err)
			}
			if m.Serial() != leaf.Serial() {
				t.Errorf("serial %s, want %s", m.Serial(), leaf.Serial())
			}
			if len(m.KeyPair.Certificate) != 2 {
				t.Errorf("chain length %d, want 2 (leaf and CA)", len(m.KeyPair.Certificate))
			}
		}
	}
}

func TestParsePFXLegacyEncoding(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	leaf := ca.Issue(t, gwtest.RSA, "old.example.test")
	der, err := pkcs12.LegacyDES.Encode(leaf.Key, leaf.Cert, nil, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := certs.ParsePFX(der, "pw"); err != nil {
		t.Fatalf("3DES PFX: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	leaf := ca.Issue(t, gwtest.ECDSA, "site.example.test")
	other := ca.Issue(t, gwtest.ECDSA, "other.example.test")

	// A PEM whose key is another certificate's.
	keyDER, _ := x509.MarshalPKCS8PrivateKey(other.Key)
	mismatched := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})) + leaf.CertOnlyPEM()

	// A PFX holding a certificate and no key.
	certOnly, err := pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{leaf.Cert}, "")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, contentType, value string
		is                       error
		msg                      string
	}{
		{"PEM without key", certs.ContentTypePEM, leaf.CertOnlyPEM(), certs.ErrNoKey, "no private key"},
		{"PEM key mismatch", certs.ContentTypePEM, mismatched, certs.ErrKeyMismatch, "does not match"},
		{"PEM without certificate", certs.ContentTypePEM, "-----BEGIN X-----\n-----END X-----\n", nil, "no certificate"},
		{"PFX without key", certs.ContentTypePKCS12, base64.StdEncoding.EncodeToString(certOnly), certs.ErrNoKey, "no private key"},
		{"PFX not base64", certs.ContentTypePKCS12, "not base64!", nil, "not base64"},
		{"PFX with a password", certs.ContentTypePKCS12, leaf.PFX(t, "secret-pw"), nil, "password is wrong"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := certs.ParseSecret(tc.contentType, tc.value)
			if err == nil {
				t.Fatal("ParseSecret succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), "secret-pw") {
				t.Errorf("error reveals material: %v", err)
			}
		})
	}
}

func TestParseRoots(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	for name, v := range map[string]string{
		"PEM":        string(ca.PEM()),
		"base64 DER": base64.StdEncoding.EncodeToString(ca.Cert.Raw),
		"base64 PEM": base64.StdEncoding.EncodeToString(ca.PEM()),
	} {
		roots, err := certs.ParseRoots(v)
		if err != nil || len(roots) != 1 || !roots[0].Equal(ca.Cert) {
			t.Errorf("%s: %v, %v", name, roots, err)
		}
	}
	if _, err := certs.ParseRoots("bm90IGEgY2VydA=="); err == nil {
		t.Error("ParseRoots accepted garbage")
	}
}

func FuzzParseSecret(f *testing.F) {
	f.Add("application/x-pem-file", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	f.Add("application/x-pkcs12", "MIIB")
	f.Fuzz(func(t *testing.T, ct, v string) {
		certs.ParseSecret(ct, v)
		certs.ParseRoots(v)
	})
}
