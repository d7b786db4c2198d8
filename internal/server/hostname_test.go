package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/pki"
	"github.com/keygate/keygate/internal/server"
)

// TestHostnameKeepsChallengeVerification serves the vault under a DNS name
// and uses the SDK with challenge resource verification left on: the
// challenge's resource must be a parent domain of the vault's host.
func TestHostnameKeepsChallengeVerification(t *testing.T) {
	const host = "kv.vault.keygate.test"
	tv := startVault(t, "", func(c *server.Config) { c.Hostname = host })
	if got, want := tv.srv.Resource(), "https://vault.keygate.test:"; !strings.HasPrefix(got, want) {
		t.Fatalf("resource = %q, want prefix %q", got, want)
	}

	// No resolver here knows keygate.test: dial every name to the server's
	// loopback address, as a hosts file entry would.
	addr := strings.TrimPrefix(tv.srv.URL(), "https://")
	addr = "127.0.0.1" + addr[strings.LastIndex(addr, ":"):]
	tr := tv.http.Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	hc := &http.Client{Transport: tr}

	cred, err := tv.creds.Credential(hc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azsecrets.NewClient(tv.srv.URL(), cred, &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: hc},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if _, err := c.SetSecret(ctx, "named", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatalf("SetSecret with verification on: %v", err)
	}
	got, err := c.GetSecret(ctx, "named", "", nil)
	if err != nil || *got.Value != "v" {
		t.Fatalf("GetSecret: %v", err)
	}
	if !strings.HasPrefix(string(*got.ID), "https://"+host+":") {
		t.Errorf("id %s is not under the host name", *got.ID)
	}
}

// TestOperatorCertificate serves the operator's certificate instead of one
// from the local CA, and clients trust the operator's CA.
func TestOperatorCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("operator CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServer([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, caFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	writePEM(t, certFile, "CERTIFICATE", leaf.Certificate[0])
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	writePEM(t, caFile, "CERTIFICATE", ca.Cert.Raw)

	tv := startVaultWithCA(t, caFile, func(c *server.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	if _, err := os.Stat(tv.srv.CAFile()); err == nil {
		t.Errorf("local CA written although the operator gave a certificate")
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(tv.srv.URL(), "https://"), &tls.Config{RootCAs: rootsOf(t, caFile)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(leaf.Leaf.SerialNumber) != 0 {
		t.Errorf("served serial %v, want the operator's %v", got, leaf.Leaf.SerialNumber)
	}
	if _, err := tv.secrets.SetSecret(ctxT(t), "op", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Errorf("SDK through the operator's certificate: %v", err)
	}
}

// startVaultWithCA starts a vault whose clients trust caFile.
func startVaultWithCA(t *testing.T, caFile string, opts ...vaultOption) *testVault {
	t.Helper()
	tv := startVaultNoConnect(t, "", opts...)
	tv.connectWith(caFile)
	return tv
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func rootsOf(t *testing.T, caFile string) *x509.CertPool {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(mustReadFile(t, caFile)) {
		t.Fatal("no CA in file")
	}
	return pool
}
