// Package quickstart prepares what `keygate up` shows beside the vault and
// its identity agent: a certificate that the vault issues from a private
// CA of its own, a demo backend, and the configuration of a gateway whose
// HTTPS listener serves that certificate, authenticated as the local
// managed identity. It works as a security team would: through the Azure
// SDK clients of the vault's administrator, over HTTPS.
package quickstart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"

	"github.com/keygate/keygate/internal/client"
)

// Names of what the quick start creates in the default vault.
const (
	// IssuerName is the keygate-ca issuer that signs the demo certificate.
	IssuerName = "local-ca"

	// CertificateName is the certificate the gateway's listener serves.
	CertificateName = "gateway-demo"
)

// Config is what Prepare needs.
type Config struct {
	// Dir is where the gateway configuration and the issuer's chain are
	// written (KEYGATE_HOME).
	Dir string

	// Admin is the vault's administrator, from admin.json.
	Admin client.Credentials

	// ClientID is the managed identity the gateway authenticates as.
	ClientID string

	// GatewayPort, BackendAddr and AdminAddr are where the gateway's HTTPS
	// listener (on 127.0.0.1), the demo backend and the gateway's admin
	// listener listen.
	GatewayPort int
	BackendAddr string
	AdminAddr   string
}

// Files are what Prepare wrote.
type Files struct {
	// GatewayConfig is the gateway's configuration, YAML.
	GatewayConfig string

	// CAFile is the issuer's chain, PEM: what a client trusts to reach
	// the gateway.
	CAFile string
}

// Prepare makes sure the issuer and the certificate exist in the vault
// (creating them on the first run, waiting for the certificate to be
// issued), and writes the issuer's chain for clients and the gateway's
// configuration, anew on every run so that they match the flags.
func Prepare(ctx context.Context, cfg Config) (Files, error) {
	files := Files{
		GatewayConfig: filepath.Join(cfg.Dir, "gateway.yaml"),
		CAFile:        filepath.Join(cfg.Dir, "gateway-ca.pem"),
	}
	certs, err := cfg.Admin.Certificates(cfg.Admin.VaultURL)
	if err != nil {
		return files, err
	}
	if err := ensureIssuer(ctx, certs); err != nil {
		return files, err
	}
	if err := ensureCertificate(ctx, certs); err != nil {
		return files, err
	}

	chain, err := cfg.Admin.IssuerChain(ctx, cfg.Admin.VaultURL, IssuerName)
	if err != nil {
		return files, err
	}
	if err := os.WriteFile(files.CAFile, chain, 0o644); err != nil {
		return files, fmt.Errorf("writing the issuer's chain: %w", err)
	}

	if err := os.WriteFile(files.GatewayConfig, []byte(gatewayYAML(cfg)), 0o644); err != nil {
		return files, fmt.Errorf("writing the gateway configuration: %w", err)
	}
	return files, nil
}

// ensureIssuer creates the keygate-ca issuer unless it exists.
func ensureIssuer(ctx context.Context, c *azcertificates.Client) error {
	_, err := c.GetIssuer(ctx, IssuerName, nil)
	if !isNotFound(err) {
		return err
	}
	_, err = c.SetIssuer(ctx, IssuerName, azcertificates.SetIssuerParameters{Provider: to.Ptr("keygate-ca")}, nil)
	if err != nil {
		return fmt.Errorf("creating issuer %s: %w", IssuerName, err)
	}
	return nil
}

// ensureCertificate creates the demo certificate unless it exists, and
// waits until the vault has issued it.
func ensureCertificate(ctx context.Context, c *azcertificates.Client) error {
	_, err := c.GetCertificate(ctx, CertificateName, "", nil)
	if !isNotFound(err) {
		return err
	}
	policy := &azcertificates.CertificatePolicy{
		IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr(IssuerName)},
		KeyProperties: &azcertificates.KeyProperties{
			KeyType: to.Ptr(azcertificates.KeyTypeEC), Curve: to.Ptr(azcertificates.CurveNameP256),
			Exportable: to.Ptr(true),
		},
		SecretProperties: &azcertificates.SecretProperties{ContentType: to.Ptr("application/x-pem-file")},
		X509CertificateProperties: &azcertificates.X509CertificateProperties{
			Subject: to.Ptr("CN=localhost"),
			SubjectAlternativeNames: &azcertificates.SubjectAlternativeNames{
				DNSNames: []*string{to.Ptr("localhost")}, IPAddresses: []*string{to.Ptr("127.0.0.1")},
			},
			ValidityInMonths: to.Ptr(int32(3)),
		},
	}
	if _, err := c.CreateCertificate(ctx, CertificateName, azcertificates.CreateCertificateParameters{CertificatePolicy: policy}, nil); err != nil {
		return fmt.Errorf("creating certificate %s: %w", CertificateName, err)
	}
	return waitIssued(ctx, c)
}

// waitIssued polls the pending operation, as azcertificates' clients do,
// until the vault has issued the certificate.
func waitIssued(ctx context.Context, c *azcertificates.Client) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		op, err := c.GetCertificateOperation(ctx, CertificateName, nil)
		if err != nil {
			return fmt.Errorf("waiting for certificate %s: %w", CertificateName, err)
		}
		status := ""
		if op.Status != nil {
			status = *op.Status
		}
		switch status {
		case "completed":
			return nil
		case "inProgress":
		default:
			return fmt.Errorf("certificate %s was not issued: %s", CertificateName, status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for certificate %s: %w", CertificateName, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// gatewayYAML is the quick start's gateway configuration: one HTTPS
// listener on loopback with the vault's certificate, in front of the
// demo backend.
func gatewayYAML(cfg Config) string {
	return fmt.Sprintf(`# The gateway keygate up runs, written anew on each run. To experiment,
# copy it and run the copy with keygate gateway run --config FILE. The
# property names are those of Azure's Microsoft.Network/applicationGateways
# (see README.md, Gateway).
name: keygate-up
identity:
  clientId: %s          # the managed identity keygate-local, through the local agent
keyVault:
  trustedCaFile: %s
frontendIPConfigurations: [{name: loopback, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: https, port: %d}]
sslCertificates:
  - name: demo
    keyVaultSecretId: %s/secrets/%s    # versionless: follows renewals
httpListeners:
  - {name: demo, frontendIPConfiguration: loopback, frontendPort: https, protocol: Https, sslCertificate: demo}
backendAddressPools:
  - {name: demo, backendAddresses: [{ipAddress: %s}]}
backendHttpSettingsCollection:
  - {name: demo, port: %s, protocol: Http, requestTimeout: 30}
requestRoutingRules:
  - {name: demo, ruleType: Basic, priority: 100, httpListener: demo, backendAddressPool: demo, backendHttpSettings: demo}
admin:
  address: %s
accessLog:
  path: %s
`, cfg.ClientID, cfg.Admin.CAFile, cfg.GatewayPort, strings.TrimSuffix(cfg.Admin.VaultURL, "/"), CertificateName,
		hostOf(cfg.BackendAddr), portOf(cfg.BackendAddr), cfg.AdminAddr, filepath.Join(cfg.Dir, "gateway-access.log"))
}

func hostOf(addr string) string { h, _, _ := strings.Cut(addr, ":"); return h }

func portOf(addr string) string { _, p, _ := strings.Cut(addr, ":"); return p }

// Backend is the demo backend: it answers every request with a short text
// that shows what the gateway forwarded.
func Backend() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Hello from keygate's demo backend.\n\n")
		fmt.Fprintf(w, "You reached %s %s through the gateway, which terminated TLS\n", r.Method, r.URL.Path)
		fmt.Fprintf(w, "with the certificate %q from the vault.\n\n", CertificateName)
		for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Original-Host"} {
			fmt.Fprintf(w, "%s: %s\n", h, r.Header.Get(h))
		}
		io.Copy(io.Discard, r.Body)
	})
}
