package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// testChain makes a root, an intermediate and a leaf of spec signed by
// the intermediate, and returns the leaf's bundle.
func testChain(t testing.TB, spec KeySpec) (*Bundle, *CA) {
	t.Helper()
	now := time.Now()
	root, err := NewCA("test root", now)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("test intermediate", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := GenerateKey(spec)
	if err != nil {
		t.Fatal(err)
	}
	props := X509Props{Subject: "CN=leaf.example, O=Example", DNSNames: []string{"leaf.example"}, ValidityMonths: 1}
	tmpl, err := props.Template(now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := inter.Sign(tmpl, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &Bundle{Key: key, Certs: []*x509.Certificate{leaf, inter.Cert, root.Cert}}, root
}

func TestPFXEncodingsDecode(t *testing.T) {
	b, _ := testChain(t, KeySpec{Type: KeyTypeEC, Curve: CurveP256})
	encoders := []struct {
		name string
		enc  *pkcs12.Encoder
	}{
		{"modern AES", pkcs12.Modern2023},
		{"legacy 3DES", pkcs12.LegacyDES},
		{"legacy RC2", pkcs12.LegacyRC2},
	}
	for _, e := range encoders {
		for _, pw := range []string{"", "s3cret"} {
			t.Run(e.name+"/password="+pw, func(t *testing.T) {
				// Chain given out of order: the decoder must put it right.
				pfx, err := e.enc.Encode(b.Key, b.Certs[0], []*x509.Certificate{b.Certs[2], b.Certs[1]}, pw)
				if err != nil {
					t.Fatal(err)
				}
				got, err := DecodePFX(pfx, pw)
				if err != nil {
					t.Fatal(err)
				}
				assertSameChain(t, got, b)
				if pw != "" {
					if _, err := DecodePFX(pfx, "wrong"); !errors.Is(err, ErrWrongPassword) {
						t.Errorf("wrong password: %v, want ErrWrongPassword", err)
					}
				}
			})
		}
	}
}

func assertSameChain(t *testing.T, got, want *Bundle) {
	t.Helper()
	if len(got.Certs) != len(want.Certs) {
		t.Fatalf("%d certificates, want %d", len(got.Certs), len(want.Certs))
	}
	for i := range want.Certs {
		if !got.Certs[i].Equal(want.Certs[i]) {
			t.Errorf("certificate %d is %s, want %s", i, got.Certs[i].Subject, want.Certs[i].Subject)
		}
	}
	if got.Key == nil || !KeyMatches(got.Certs[0].PublicKey, got.Key) {
		t.Errorf("key does not match the leaf")
	}
}

func TestPEMInAnyOrder(t *testing.T) {
	b, _ := testChain(t, KeySpec{Type: KeyTypeRSA, Size: 2048})
	pemText, err := b.EncodePEM()
	if err != nil {
		t.Fatal(err)
	}
	// Root first, key in the middle, leaf last.
	blocks := splitPEM(pemText)
	shuffled := strings.Join([]string{blocks[3], blocks[2], blocks[0], blocks[1]}, "\n")
	got, err := DecodePEM([]byte(shuffled))
	if err != nil {
		t.Fatal(err)
	}
	assertSameChain(t, got, b)
}

// splitPEM returns each PEM block of b as text.
func splitPEM(b []byte) []string {
	var out []string
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out
		}
		out = append(out, string(pem.EncodeToMemory(block)))
	}
}

func TestBadBundles(t *testing.T) {
	b, _ := testChain(t, KeySpec{Type: KeyTypeEC, Curve: CurveP384})
	other, _ := GenerateKey(KeySpec{Type: KeyTypeEC, Curve: CurveP256})
	certOnly := CertsPEM(b.Certs)
	otherKeyPEM, _ := (&Bundle{Key: other, Certs: b.Certs}).EncodePEM()
	mismatchPFX, _ := pkcs12.Modern2023.Encode(other, b.Certs[0], nil, "")
	trust, _ := pkcs12.Modern2023.EncodeTrustStore(b.Certs, "")
	cases := []struct {
		name string
		fn   func() error
		want string
	}{
		{"pem without key", func() error { _, err := DecodePEM(certOnly); return err }, "no private key"},
		{"pem with foreign key", func() error { _, err := DecodePEM(otherKeyPEM); return err }, "does not match"},
		{"pem garbage", func() error { _, err := DecodePEM([]byte("hello")); return err }, "malformed PEM"},
		{"pfx garbage", func() error { _, err := DecodePFX([]byte("hello"), ""); return err }, "not a PKCS#12"},
		{"pfx with foreign key", func() error { _, err := DecodePFX(mismatchPFX, ""); return err }, "does not match"},
		{"pfx without key", func() error { _, err := DecodePFX(trust, ""); return err }, "no private key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.fn()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestOpenSSLOpensWhatWeWrite hands the PFX and PEM keygate writes to
// Debian's openssl, which no one here wrote.
func TestOpenSSLOpensWhatWeWrite(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed; scripts/test.sh installs it")
	}
	dir := t.TempDir()
	for _, spec := range []KeySpec{{Type: KeyTypeRSA, Size: 2048}, {Type: KeyTypeEC, Curve: CurveP521}} {
		b, _ := testChain(t, spec)
		pfx, err := b.EncodePFX()
		if err != nil {
			t.Fatal(err)
		}
		pfxFile := filepath.Join(dir, "b.pfx")
		os.WriteFile(pfxFile, pfx, 0o600)
		out, err := exec.Command(openssl, "pkcs12", "-in", pfxFile, "-passin", "pass:", "-nodes").CombinedOutput()
		if err != nil {
			t.Fatalf("openssl pkcs12 (%s): %v\n%s", spec, err, out)
		}
		if !bytes.Contains(out, []byte("PRIVATE KEY")) || bytes.Count(out, []byte("BEGIN CERTIFICATE")) != 3 {
			t.Errorf("openssl pkcs12 (%s) printed no key or not 3 certificates:\n%s", spec, out)
		}

		pemText, _ := b.EncodePEM()
		pemFile := filepath.Join(dir, "b.pem")
		os.WriteFile(pemFile, pemText, 0o600)
		if out, err := exec.Command(openssl, "x509", "-in", pemFile, "-noout", "-subject").CombinedOutput(); err != nil ||
			!bytes.Contains(out, []byte("leaf.example")) {
			t.Errorf("openssl x509 (%s): %v\n%s", spec, err, out)
		}
		if out, err := exec.Command(openssl, "pkey", "-in", pemFile, "-noout").CombinedOutput(); err != nil {
			t.Errorf("openssl pkey (%s): %v\n%s", spec, err, out)
		}
	}
}

func TestSubjectParsing(t *testing.T) {
	n, err := ParseSubject(`CN=www.example.com, O="Example, Inc."; OU=Ops, C=US, E=ops@example.com`)
	if err != nil {
		t.Fatal(err)
	}
	if n.CommonName != "www.example.com" || n.Organization[0] != "Example, Inc." || n.Country[0] != "US" || len(n.ExtraNames) != 1 {
		t.Errorf("parsed %+v", n)
	}
	for _, bad := range []string{"CN", "XX=1", "C=USA", `CN="open`, "CN=a, CN=b"} {
		if _, err := ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) succeeded", bad)
		}
	}
}

func TestCSRCarriesWhatThePolicyAsks(t *testing.T) {
	key, _ := GenerateKey(KeySpec{Type: KeyTypeEC, Curve: CurveP256})
	props := X509Props{Subject: "CN=csr.example", DNSNames: []string{"csr.example"}, IPAddresses: []string{"127.0.0.1"},
		EKUs: []string{"1.3.6.1.5.5.7.3.1"}, KeyUsage: []string{"digitalSignature", "keyAgreement"}, ValidityMonths: 12}
	tmpl, err := props.Template(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	der, err := CreateCSR(tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	if csr.Subject.CommonName != "csr.example" || len(csr.DNSNames) != 1 || len(csr.IPAddresses) != 1 || len(csr.Extensions) < 3 {
		t.Errorf("CSR = %+v", csr)
	}
}

func FuzzDecodePEM(f *testing.F) {
	b, _ := testChain(f, KeySpec{Type: KeyTypeEC, Curve: CurveP256})
	p, _ := b.EncodePEM()
	f.Add(p)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodePEM(data)
		if err == nil && (got.Key == nil || !KeyMatches(got.Leaf().PublicKey, got.Key)) {
			t.Fatal("decoded a bundle whose key does not match its leaf")
		}
	})
}

func FuzzDecodePFX(f *testing.F) {
	b, _ := testChain(f, KeySpec{Type: KeyTypeEC, Curve: CurveP256})
	p, _ := b.EncodePFX()
	f.Add(p, "")
	f.Fuzz(func(t *testing.T, data []byte, pw string) {
		got, err := DecodePFX(data, pw)
		if err == nil && (got.Key == nil || !KeyMatches(got.Leaf().PublicKey, got.Key)) {
			t.Fatal("decoded a bundle whose key does not match its leaf")
		}
	})
}

func TestJWKOfECKeyHasPaddedCoordinates(t *testing.T) {
	for range 20 { // P-521 coordinates often have leading zero bytes
		key, _ := GenerateKey(KeySpec{Type: KeyTypeEC, Curve: CurveP521})
		j, err := PublicJWK(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		x, _ := base64.RawURLEncoding.DecodeString(j.X)
		y, _ := base64.RawURLEncoding.DecodeString(j.Y)
		if len(x) != 66 || len(y) != 66 || j.CRV != CurveP521 {
			t.Fatalf("JWK x %d bytes, y %d bytes, crv %s", len(x), len(y), j.CRV)
		}
	}
}

func FuzzParseSubject(f *testing.F) {
	f.Add(`CN=www.example.com, O="Example, Inc."; C=US`)
	f.Add(`CN=a\,b`)
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSubject(s)
		if err == nil && len(n.Country) > 0 && len(n.Country[0]) != 2 {
			t.Fatalf("accepted country %q", n.Country[0])
		}
	})
}
