package server_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/keygate/keygate/internal/pki"
)

// certs returns an azcertificates client of the administrator.
func (tv *testVault) certs() *azcertificates.Client {
	tv.t.Helper()
	c, err := tv.creds.Certificates(tv.srv.URL())
	if err != nil {
		tv.t.Fatal(err)
	}
	return c
}

// selfPolicy is a policy for a certificate of key spec, for host, issued
// by issuerName, with the secret in contentType.
func certPolicy(spec pki.KeySpec, issuerName, host, contentType string) *azcertificates.CertificatePolicy {
	kp := &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyType(spec.Type)), Exportable: to.Ptr(true)}
	if spec.Type == pki.KeyTypeRSA {
		kp.KeySize = to.Ptr(int32(spec.Size))
	} else {
		kp.Curve = to.Ptr(azcertificates.CurveName(spec.Curve))
	}
	return &azcertificates.CertificatePolicy{
		IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr(issuerName)},
		KeyProperties:    kp,
		SecretProperties: &azcertificates.SecretProperties{ContentType: to.Ptr(contentType)},
		X509CertificateProperties: &azcertificates.X509CertificateProperties{
			Subject:                 to.Ptr("CN=" + host),
			SubjectAlternativeNames: &azcertificates.SubjectAlternativeNames{DNSNames: []*string{to.Ptr(host)}, IPAddresses: []*string{to.Ptr("127.0.0.1")}},
			ValidityInMonths:        to.Ptr(int32(12)),
		},
	}
}

// waitOperation polls the pending operation of name, as clients of
// azcertificates v1.5.0 must, until done says it is done. Bounded: at most
// about a minute.
func waitOperation(t *testing.T, c *azcertificates.Client, name string, done func(azcertificates.CertificateOperation) bool) azcertificates.CertificateOperation {
	t.Helper()
	var op azcertificates.CertificateOperation
	for range 1200 {
		resp, err := c.GetCertificateOperation(ctxT(t), name, nil)
		if err != nil {
			t.Fatalf("GetCertificateOperation(%s): %v", name, err)
		}
		op = resp.CertificateOperation
		if done(op) {
			return op
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("operation of %s still %s", name, deref(op.Status))
	return op
}

func notInProgress(op azcertificates.CertificateOperation) bool {
	return deref(op.Status) != "inProgress"
}

// tlsCertFromSecret builds a tls.Certificate from a certificate's secret
// value, as a gateway does.
func tlsCertFromSecret(t *testing.T, value, contentType string) tls.Certificate {
	t.Helper()
	switch contentType {
	case "application/x-pkcs12":
		der, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			t.Fatalf("PFX secret is not base64: %v", err)
		}
		key, leaf, cas, err := pkcs12.DecodeChain(der, "")
		if err != nil {
			t.Fatalf("PFX secret does not open with an empty password: %v", err)
		}
		chain := [][]byte{leaf.Raw}
		for _, c := range cas {
			chain = append(chain, c.Raw)
		}
		return tls.Certificate{Certificate: chain, PrivateKey: key.(crypto.Signer), Leaf: leaf}
	case "application/x-pem-file":
		if !strings.HasPrefix(value, "-----BEGIN PRIVATE KEY-----") {
			t.Fatalf("PEM secret does not start with the PKCS#8 key")
		}
		c, err := tls.X509KeyPair([]byte(value), []byte(value))
		if err != nil {
			t.Fatalf("PEM secret is not a key pair: %v", err)
		}
		return c
	}
	t.Fatalf("content type %q", contentType)
	return tls.Certificate{}
}

// handshake serves cert on a loopback TLS listener and completes a real
// handshake to it for serverName, verifying the chain against roots. It
// returns the leaf the client saw.
func handshake(t *testing.T, cert tls.Certificate, roots *x509.CertPool, serverName string) *x509.Certificate {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.(*tls.Conn).Handshake()
		io.Copy(io.Discard, conn)
	}()
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: serverName})
	if err != nil {
		t.Fatalf("TLS handshake for %s: %v", serverName, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// secretOf reads a certificate version's secret with azsecrets.
func (tv *testVault) secretOf(t *testing.T, name, version string) (string, string) {
	t.Helper()
	s, err := tv.secrets.GetSecret(ctxT(t), name, version, nil)
	if err != nil {
		t.Fatalf("GetSecret(%s/%s): %v", name, version, err)
	}
	if s.Managed == nil || !*s.Managed || s.KID == nil || !strings.HasSuffix(string(*s.KID), "/keys/"+name+"/"+s.ID.Version()) {
		t.Errorf("secret of certificate %s: managed=%v kid=%v", name, s.Managed, s.KID)
	}
	return *s.Value, deref(s.ContentType)
}

// rawJSON sends a raw request with the administrator's token and decodes
// the JSON answer into out (when not nil).
func (tv *testVault) rawJSON(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	resp, b := tv.do(method, path, tv.adminToken(), body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal([]byte(b), out); err != nil {
			t.Fatalf("%s %s: %v: %.300s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

// issuerRoots downloads a keygate-ca issuer's chain and returns its root
// as a pool.
func (tv *testVault) issuerRoots(t *testing.T, issuer string) *x509.CertPool {
	t.Helper()
	resp, body := tv.do("GET", "/certificates/issuers/"+issuer+"/chain?api-version=2025-07-01", tv.adminToken(), "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-pem-file" {
		t.Fatalf("issuer chain: %d %s", resp.StatusCode, body)
	}
	certs, err := pki.DecodePEMCerts([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 {
		t.Fatalf("issuer chain has %d certificates, want intermediate and root", len(certs))
	}
	pool := x509.NewCertPool()
	pool.AddCert(certs[1])
	return pool
}

// createIssuer sets a keygate-ca issuer.
func (tv *testVault) createIssuer(t *testing.T, name string) {
	t.Helper()
	_, err := tv.certs().SetIssuer(ctxT(t), name, azcertificates.SetIssuerParameters{Provider: to.Ptr("keygate-ca")}, nil)
	if err != nil {
		t.Fatalf("SetIssuer(%s): %v", name, err)
	}
}

func ctxLong(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
