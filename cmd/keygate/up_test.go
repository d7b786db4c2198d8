package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/testkit"
)

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer = testkit.Buffer

var curlLine = regexp.MustCompile(`curl --cacert (\S+) (https://\S+)`)

// reloadLine finds the reload command `keygate up` prints.
var reloadLine = regexp.MustCompile(`keygate (gateway reload --admin \S+)\)`)

// runPrinted runs a command line as `keygate up` printed it, with the
// shell, and returns what it wrote.
func runPrinted(t *testing.T, line string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", line+" --silent --show-error --max-time 10").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	return string(out)
}

// startUp runs `keygate up` on free loopback ports with its data in home,
// waits until it prints the gateway's curl command, and returns the CA
// file and URL of that command and a function that stops it.
func startUp(t *testing.T, home string) (caFile, url string, stop func(), printed *syncBuffer) {
	t.Helper()
	t.Setenv("KEYGATE_HOME", home)
	// up sets the agent's environment for its gateway; restored after.
	t.Setenv("IDENTITY_ENDPOINT", "")
	t.Setenv("IDENTITY_HEADER", "")
	port := func() string { return fmt.Sprint(gwtest.FreePort(t, "127.0.0.1")) }

	ctx, cancel := context.WithCancel(context.Background())
	cmd := rootCommand()
	out := &syncBuffer{}
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs([]string{"up", "--log-level", "error",
		"--listen", "127.0.0.1:" + port(), "--agent-listen", "127.0.0.1:" + port(),
		"--gateway-port", port(), "--backend-listen", "127.0.0.1:" + port(), "--gateway-admin", "127.0.0.1:" + port()})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("up returned %v\n%s", err, out)
			}
		case <-time.After(30 * time.Second):
			t.Error("up did not stop after its context ended")
		}
	})
	t.Cleanup(stop)

	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := curlLine.FindStringSubmatch(out.String()); m != nil {
			return m[1], m[2], stop, out
		}
		select {
		case err := <-done:
			t.Fatalf("up ended early: %v\n%s", err, out)
		default:
		}
	}
	t.Fatalf("up printed no curl command in 60s:\n%s", out)
	return "", "", nil, nil
}

// TestUpRunsTheWholeChain runs `keygate up` and follows what it prints: the
// gateway answers over TLS with a certificate the vault issued, which
// chains to the CA file the curl command names, and forwards to the demo
// backend. A second run on the same data serves the same certificate.
func TestUpRunsTheWholeChain(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	caFile, url, stop, printed := startUp(t, home)
	if out := runPrinted(t, "curl --cacert "+caFile+" "+url); !strings.Contains(out, "Hello from keygate's demo backend") {
		t.Errorf("the printed curl command answered %q", out)
	}
	serial, body := getThroughGateway(t, caFile, url)
	if !strings.Contains(body, "Hello from keygate's demo backend") || !strings.Contains(body, "X-Forwarded-Proto: https") {
		t.Errorf("through the gateway: %q", body)
	}
	config, err := os.ReadFile(filepath.Join(home, "gateway.yaml"))
	if err != nil || !strings.Contains(string(config), "keyVaultSecretId:") {
		t.Errorf("gateway.yaml: %v %q", err, config)
	}

	// The printed reload command applies the file again.
	m := reloadLine.FindStringSubmatch(printed.String())
	if m == nil {
		t.Fatalf("up printed no reload command:\n%s", printed)
	}
	if out, err := run(t, strings.Fields(m[1])...); err != nil || !strings.Contains(out, "generation 2") {
		t.Errorf("keygate %s: %v\n%s", m[1], err, out)
	}
	stop()

	caFile, url, _, _ = startUp(t, home)
	if again, _ := getThroughGateway(t, caFile, url); again != serial {
		t.Errorf("the second run serves serial %s, want the first run's %s", again, serial)
	}
}

// getThroughGateway GETs url trusting only caFile and returns the serial
// of the certificate served and the body.
func getThroughGateway(t *testing.T, caFile, url string) (serial, body string) {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}}
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s trusting %s: %v", url, caFile, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %q", url, resp.Status, b)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if len(resp.TLS.VerifiedChains) == 0 || leaf.Subject.CommonName != "localhost" {
		t.Errorf("served certificate %q, verified chains %d", leaf.Subject, len(resp.TLS.VerifiedChains))
	}
	return leaf.SerialNumber.String(), string(b)
}
