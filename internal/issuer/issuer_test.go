package issuer

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/pki"
)

func template(t *testing.T) *x509.Certificate {
	t.Helper()
	p := pki.X509Props{Subject: "CN=svc.example", DNSNames: []string{"svc.example"},
		EKUs: []string{"1.3.6.1.5.5.7.3.1"}, ValidityMonths: 3}
	tmpl, err := p.Template(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func TestCAIssuesVerifiableChains(t *testing.T) {
	ca, err := NewCA("corp", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Through storage and back, as the vault keeps it.
	m, err := ca.Material()
	if err != nil {
		t.Fatal(err)
	}
	ca, err = ParseCA(m)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.KeySpec{Type: pki.KeyTypeRSA, Size: 2048})
	chain, err := ca.Issue(template(t), key)
	if err != nil {
		t.Fatal(err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(ca.Chain()[1])
	inters.AddCert(chain[1])
	_, err = chain[0].Verify(x509.VerifyOptions{DNSName: "svc.example", Roots: roots, Intermediates: inters,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		t.Errorf("leaf does not verify against the CA's root: %v", err)
	}
}

func TestSelfSignedAndUnknown(t *testing.T) {
	key, _ := pki.GenerateKey(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256})
	chain, err := Reserved("self").Issue(template(t), key)
	if err != nil || len(chain) != 1 || chain[0].CheckSignature(chain[0].SignatureAlgorithm, chain[0].RawTBSCertificate, chain[0].Signature) != nil {
		t.Fatalf("self-signed: %v", err)
	}
	if _, err := Reserved("UNKNOWN").Issue(template(t), key); err != ErrNeedsMerge {
		t.Errorf("Unknown issued: %v", err)
	}
	if Reserved("corp") != nil {
		t.Errorf("corp is not reserved")
	}
}

func TestMergeChecksTheKey(t *testing.T) {
	ca, _ := NewCA("ext", time.Now())
	key, _ := pki.GenerateKey(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256})
	other, _ := pki.GenerateKey(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256})
	chain, _ := ca.Issue(template(t), key)
	ders := [][]byte{chain[1].Raw, chain[0].Raw} // out of order on purpose
	got, err := Merge(key, ders)
	if err != nil || !got[0].Equal(chain[0]) {
		t.Fatalf("Merge = %v, %v", got, err)
	}
	if _, err := Merge(other, ders); err == nil || !strings.Contains(err.Error(), "pending request") {
		t.Errorf("merge with another key: %v", err)
	}
	if _, err := Merge(key, [][]byte{[]byte("junk")}); err == nil {
		t.Errorf("merge of junk succeeded")
	}
}
