package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCertAndKey writes a self-signed certificate and its RSA key to
// one PEM file, as a CI system keeps them.
func writeCertAndKey(t *testing.T, path string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "ci"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServicePrincipalCommands creates a principal that signs in with a
// certificate and one with a secret, grants them get on secrets, and
// reads a secret as each through the CLI (the Azure SDK's certificate and
// secret credentials underneath); a reset secret replaces the old one.
func TestServicePrincipalCommands(t *testing.T) {
	admin := "--credentials=" + startServer(t)
	dir := t.TempDir()
	mustRun(t, "secret", "set", admin, "--name", "deploy-key", "--value", "v1")

	certFile := filepath.Join(dir, "ci.pem")
	writeCertAndKey(t, certFile)
	certCreds := filepath.Join(dir, "ci.json")
	mustRun(t, "identity", "sp", "create", admin, "--name", "ci", "--cert", certFile, "--out", certCreds)
	secretCreds := filepath.Join(dir, "laptop.json")
	mustRun(t, "identity", "sp", "create", admin, "--name", "laptop", "--out", secretCreds)

	var list []struct {
		AppID, ID, DisplayName string
		PasswordCredentials    []any
		KeyCredentials         []struct{ CustomKeyIdentifier string }
	}
	decode(t, mustRun(t, "identity", "sp", "list", admin), &list)
	byName := map[string]int{}
	for i, p := range list {
		byName[p.DisplayName] = i
	}
	ci, laptop := list[byName["ci"]], list[byName["laptop"]]
	if len(ci.KeyCredentials) != 1 || len(ci.PasswordCredentials) != 0 || len(laptop.PasswordCredentials) != 1 {
		t.Fatalf("principals listed as %+v", list)
	}
	for _, p := range []string{ci.ID, laptop.ID} {
		mustRun(t, "vault", "set-policy", admin, "--object-id", p, "--secret-permissions", "get")
	}

	for _, creds := range []string{certCreds, secretCreds} {
		if fi, err := os.Stat(creds); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", creds, err, fi.Mode())
		}
		if out := mustRun(t, "secret", "show", "--credentials="+creds, "--name", "deploy-key"); !strings.Contains(out, `"v1"`) {
			t.Errorf("as %s: %s", filepath.Base(creds), out)
		}
	}
	b, _ := os.ReadFile(certCreds)
	if strings.Contains(string(b), "clientSecret") || !strings.Contains(string(b), certFile) {
		t.Errorf("the certificate principal's credentials file: %s", b)
	}

	// A new secret: the old file stops working, the new one works.
	newCreds := filepath.Join(dir, "laptop2.json")
	mustRun(t, "identity", "sp", "secret", "reset", admin, "--app-id", laptop.AppID, "--out", newCreds)
	if _, err := run(t, "secret", "show", "--credentials="+secretCreds, "--name", "deploy-key"); err == nil {
		t.Error("the replaced secret still reads")
	}
	mustRun(t, "secret", "show", "--credentials="+newCreds, "--name", "deploy-key")

	// Refused, naming why: the last way in, a file that exists, a key
	// file without a certificate, the administrator.
	var adminDoc struct{ ClientID string }
	raw, _ := os.ReadFile(strings.TrimPrefix(admin, "--credentials="))
	json.Unmarshal(raw, &adminDoc)
	keyOnly := filepath.Join(dir, "key-only.pem")
	os.WriteFile(keyOnly, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"identity", "sp", "cert", "remove", admin, "--app-id", ci.AppID, "--thumbprint", ci.KeyCredentials[0].CustomKeyIdentifier}, "last certificate"},
		{[]string{"identity", "sp", "secret", "remove", admin, "--app-id", laptop.AppID}, "no certificate"},
		{[]string{"identity", "sp", "create", admin, "--name", "x", "--out", newCreds}, "exists"},
		{[]string{"identity", "sp", "create", admin, "--name", "x", "--cert", keyOnly}, "no PEM CERTIFICATE"},
		{[]string{"identity", "sp", "delete", admin, "--app-id", adminDoc.ClientID}, "administrator role"},
		{[]string{"identity", "sp", "show", admin, "--app-id", "nobody"}, "404"},
	} {
		if _, err := run(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args[:4], err, tc.want)
		}
	}
	mustRun(t, "secret", "show", "--credentials="+certCreds, "--name", "deploy-key")
}

// TestCertificateKeySendsNoPrivateKey reads the request body of a
// certificate from a PEM file that holds the key too: the key is not in
// it.
func TestCertificateKeySendsNoPrivateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "both.pem")
	writeCertAndKey(t, path)
	body, err := certificateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(body["key"], "PRIVATE KEY") || !strings.HasPrefix(body["key"], "-----BEGIN CERTIFICATE-----") {
		t.Errorf("body %q, want the certificate alone", body["key"])
	}
}
