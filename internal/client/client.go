// Package client builds Azure SDK clients for a keygate vault from the
// administrator credentials that `keygate up` writes: the vault's URL, its
// CA, and a service principal. The clients are the unmodified Azure SDK;
// this package only wires them.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// Credentials are a service principal and where to use it: the fields of
// admin.json. ClientSecret is secret: Credentials redacts itself.
type Credentials struct {
	TenantID      string `json:"tenantId"`
	ClientID      string `json:"clientId"`
	ClientSecret  string `json:"clientSecret,omitempty"`
	AuthorityHost string `json:"authorityHost"`

	// ClientCertificate is the path of a PEM file holding the
	// certificate and private key the principal signs in with, instead
	// of a secret; a relative path is taken from the credentials file's
	// folder.
	ClientCertificate string `json:"clientCertificate,omitempty"`
	VaultURL          string `json:"vaultUrl"`
	CAFile            string `json:"caFile,omitempty"`
}

// String hides the client secret.
func (c Credentials) String() string {
	if c.ClientCertificate != "" {
		return "client " + c.ClientID + " in tenant " + c.TenantID + " (certificate " + c.ClientCertificate + ")"
	}
	return "client " + c.ClientID + " in tenant " + c.TenantID + " (secret redacted)"
}

// Load reads a credentials file such as admin.json.
func Load(path string) (Credentials, error) {
	var c Credentials
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("reading credentials: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("reading credentials %s: not valid JSON", path)
	}
	for field, v := range map[string]string{"tenantId": c.TenantID, "clientId": c.ClientID,
		"authorityHost": c.AuthorityHost} {
		if v == "" {
			return c, fmt.Errorf("reading credentials %s: %s is missing", path, field)
		}
	}
	switch {
	case c.ClientSecret == "" && c.ClientCertificate == "":
		return c, fmt.Errorf("reading credentials %s: give clientSecret or clientCertificate", path)
	case c.ClientSecret != "" && c.ClientCertificate != "":
		return c, fmt.Errorf("reading credentials %s: give clientSecret or clientCertificate, not both", path)
	case c.ClientCertificate != "" && !filepath.IsAbs(c.ClientCertificate):
		c.ClientCertificate = filepath.Join(filepath.Dir(path), c.ClientCertificate)
	}
	return c, nil
}

// Transport returns an HTTP client that trusts the system roots and, when
// caFile is not empty, the CA in it.
func Transport(caFile string) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA certificate: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("reading CA certificate %s: no PEM certificate in it", caFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: time.Minute}, nil
}

// Credential returns an azidentity credential for c, talking to c's
// authority through hc. Instance discovery is off: it would ask
// Microsoft's hosts about an authority they do not know.
func (c Credentials) Credential(hc *http.Client) (azcore.TokenCredential, error) {
	opts := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: c.AuthorityHost},
		Transport: hc,
	}
	if c.ClientCertificate != "" {
		return c.certificateCredential(opts)
	}
	return azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, c.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
}

// certificateCredential signs in with the certificate and key in the
// PEM file c.ClientCertificate.
func (c Credentials) certificateCredential(opts azcore.ClientOptions) (azcore.TokenCredential, error) {
	b, err := os.ReadFile(c.ClientCertificate)
	if err != nil {
		return nil, fmt.Errorf("reading clientCertificate: %w", err)
	}
	certs, key, err := azidentity.ParseCertificates(b, nil)
	if err != nil {
		return nil, fmt.Errorf("reading clientCertificate %s: %w", c.ClientCertificate, err)
	}
	return azidentity.NewClientCertificateCredential(c.TenantID, c.ClientID, certs, key,
		&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
}

// Secrets returns an azsecrets client for vaultURL (c.VaultURL when empty).
func (c Credentials) Secrets(vaultURL string) (*azsecrets.Client, error) {
	vaultURL, hc, cred, err := c.sdkParts(vaultURL)
	if err != nil {
		return nil, err
	}
	return azsecrets.NewClient(vaultURL, cred, &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: hc},
		// A vault reached by IP address or a one-label name cannot be a
		// subdomain of its challenge's resource; see the README.
		DisableChallengeResourceVerification: NeedsVerificationOff(vaultURL),
	})
}

// sdkParts returns what every SDK client of the vault is built from: the
// vault URL (c.VaultURL when vaultURL is empty), a transport that trusts
// the vault's CA, and a credential.
func (c Credentials) sdkParts(vaultURL string) (string, *http.Client, azcore.TokenCredential, error) {
	if vaultURL == "" {
		vaultURL = c.VaultURL
	}
	if vaultURL == "" {
		return "", nil, nil, errors.New("no vault URL: give --vault-url")
	}
	hc, err := Transport(c.CAFile)
	if err != nil {
		return "", nil, nil, err
	}
	cred, err := c.Credential(hc)
	if err != nil {
		return "", nil, nil, err
	}
	return vaultURL, hc, cred, nil
}

// NeedsVerificationOff reports whether the SDK's challenge resource
// verification cannot pass for vaultURL: its host is an IP address or has
// no parent domain.
func NeedsVerificationOff(vaultURL string) bool {
	u, err := url.Parse(vaultURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	return net.ParseIP(host) != nil || strings.Count(host, ".") < 2
}

// Token obtains an access token for scope through c.
func (c Credentials) Token(ctx context.Context, hc *http.Client, scope string) (string, error) {
	cred, err := c.Credential(hc)
	if err != nil {
		return "", err
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		return "", fmt.Errorf("getting token: %w", err)
	}
	return tok.Token, nil
}
