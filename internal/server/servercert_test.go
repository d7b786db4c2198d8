package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/agent"
	"github.com/keygate/keygate/internal/pki"
	"github.com/keygate/keygate/internal/server"
)

// servedSerial dials the vault and returns the serial of the certificate
// it serves, and the connection (closed when the test ends).
func (tv *testVault) servedSerial(t *testing.T, roots *x509.CertPool) (*big.Int, *tls.Conn) {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", Time: tv.clock.Now}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(tv.srv.URL(), "https://"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, conn
}

// operatorPair writes a certificate for localhost and 127.0.0.1 issued by
// ca, valid from nbf for validity, and its key, to certFile and keyFile
// (through a rename, as a renewal tool does), and returns its serial.
func operatorPair(t *testing.T, ca *pki.CA, certFile, keyFile string, nbf time.Time, validity time.Duration) *big.Int {
	t.Helper()
	leaf, err := ca.IssueServer([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, nbf, validity)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{certFile, "CERTIFICATE", leaf.Certificate[0]}, {keyFile, "PRIVATE KEY", keyDER}} {
		writePEM(t, f.path+".new", f.typ, f.der)
		if err := os.Rename(f.path+".new", f.path); err != nil {
			t.Fatal(err)
		}
	}
	return leaf.Leaf.SerialNumber
}

// TestOperatorCertificateReloads replaces the operator's certificate files
// while the vault serves: new handshakes get the new certificate, a
// connection opened before keeps working, and files that do not load or
// hold an expired certificate leave the served one in place.
func TestOperatorCertificateReloads(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("operator CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, caFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, "CERTIFICATE", ca.Cert.Raw)
	roots := rootsOf(t, caFile)
	first := operatorPair(t, ca, certFile, keyFile, time.Now(), time.Hour)
	tv := startVaultWithCA(t, caFile, func(c *server.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	if got, _ := tv.servedSerial(t, roots); got.Cmp(first) != 0 {
		t.Fatalf("served %v, want the first certificate %v", got, first)
	}
	if _, err := tv.secrets.SetSecret(ctxT(t), "before", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}

	// Unchanged files: nothing to do.
	if err := tv.srv.RefreshServerCertificate(ctxT(t)); err != nil {
		t.Fatalf("refresh with the files unchanged: %v", err)
	}

	second := operatorPair(t, ca, certFile, keyFile, time.Now(), 2*time.Hour)
	if err := tv.srv.RefreshServerCertificate(ctxT(t)); err != nil {
		t.Fatalf("refresh after a renewal of the files: %v", err)
	}
	if got, _ := tv.servedSerial(t, roots); got.Cmp(second) != 0 {
		t.Errorf("served %v after the files changed, want the second certificate %v", got, second)
	}
	if _, err := tv.secrets.GetSecret(ctxT(t), "before", "", nil); err != nil {
		t.Errorf("the SDK client after the reload: %v", err)
	}

	// Broken or expired files: refused, the second certificate stays.
	for _, tc := range []struct {
		name  string
		write func()
		want  string
	}{
		{"garbage", func() { os.WriteFile(certFile, []byte("not a certificate"), 0o600) }, "previous certificate stays"},
		{"expired", func() { operatorPair(t, ca, certFile, keyFile, time.Now().Add(-2*time.Hour), time.Hour) }, "expired"},
	} {
		tc.write()
		err := tv.srv.RefreshServerCertificate(ctxT(t))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s files: %v, want an error saying %q", tc.name, err, tc.want)
		}
		if got, _ := tv.servedSerial(t, roots); got.Cmp(second) != 0 {
			t.Errorf("%s files: served %v, want the second certificate still", tc.name, got)
		}
	}
}

// TestLocalCertificateRenewsWhileRunning moves the clock past two thirds
// of the local CA's certificate: the running vault issues itself a new
// one, served to new handshakes, and its own agent client (which trusts
// exactly the served certificate) follows.
func TestLocalCertificateRenewsWhileRunning(t *testing.T) {
	tv := startVault(t, "", func(c *server.Config) { c.AgentListen = "127.0.0.1:0" })
	roots := rootsOf(t, tv.srv.CAFile())
	before, _ := tv.servedSerial(t, roots)

	tv.clock.Advance(200 * 24 * time.Hour)
	if err := tv.srv.RefreshServerCertificate(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got, _ := tv.servedSerial(t, roots); got.Cmp(before) != 0 {
		t.Fatalf("renewed at 200 of 365 days: serial %v, want %v still", got, before)
	}

	tv.clock.Advance(50 * 24 * time.Hour)
	if err := tv.srv.RefreshServerCertificate(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	after, conn := tv.servedSerial(t, roots)
	if after.Cmp(before) == 0 {
		t.Fatal("not renewed at 250 of 365 days")
	}
	if exp := conn.ConnectionState().PeerCertificates[0].NotAfter; !exp.After(tv.clock.Now().Add(300 * 24 * time.Hour)) {
		t.Errorf("the renewed certificate expires %v, not a year after the clock's %v", exp, tv.clock.Now())
	}

	// The agent asks the authority over the server's own listener,
	// trusting exactly what it serves: it must accept the new one. (Its
	// enrolment credential, good for 90 days, is renewed first.)
	if err := tv.srv.RenewLocalCredential(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range tv.srv.AgentEnvironment() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	req, _ := http.NewRequest(http.MethodGet, env["IDENTITY_ENDPOINT"]+"?api-version="+agent.APIVersion+"&resource="+url.QueryEscape(tv.srv.Resource()), nil)
	req.Header.Set(agent.HeaderName, env["IDENTITY_HEADER"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "access_token") {
		t.Errorf("a token through the local agent after the renewal: %d %s", resp.StatusCode, body)
	}
}
