// Package keyvault reads the gateway's vault-referenced certificates the
// way any Key Vault client does: through azsecrets over HTTPS, with a
// token from an azidentity credential (a managed identity through the
// host's identity agent by default). It knows nothing of keygate's vault;
// pointed at Azure Key Vault it works the same.
package keyvault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/client"
	"github.com/keygate/keygate/internal/gateway/certs"
)

// SecretID is a parsed keyVaultSecretId.
type SecretID struct {
	// VaultURL is the vault's origin, https://HOST[:PORT].
	VaultURL string
	Name     string
	// Version is empty for a versionless id, which follows the newest
	// version.
	Version string
}

// String returns the id as a URL.
func (id SecretID) String() string {
	s := id.VaultURL + "/secrets/" + id.Name
	if id.Version != "" {
		s += "/" + id.Version
	}
	return s
}

var (
	namePattern    = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	versionPattern = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
)

// ParseSecretID parses https://HOST/secrets/NAME[/VERSION], with or without
// a trailing slash, as Application Gateway takes keyVaultSecretId.
func ParseSecretID(s string) (SecretID, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return SecretID{}, errors.New("not a URL: want https://VAULT/secrets/NAME[/VERSION]")
	}
	if u.Scheme != "https" {
		return SecretID{}, errors.New("the vault must be reached over https")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return SecretID{}, errors.New("want https://VAULT/secrets/NAME[/VERSION] with nothing after the path")
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "secrets" {
		if len(parts) >= 2 && parts[0] == "certificates" {
			return SecretID{}, errors.New("names a certificate: use its secret, https://VAULT/secrets/NAME, which holds the key")
		}
		return SecretID{}, errors.New("want https://VAULT/secrets/NAME[/VERSION]")
	}
	id := SecretID{VaultURL: "https://" + u.Host, Name: parts[1]}
	if !namePattern.MatchString(id.Name) {
		return SecretID{}, fmt.Errorf("%q is not a secret name (letters, digits and -, at most 127)", id.Name)
	}
	if len(parts) == 3 {
		id.Version = parts[2]
		if !versionPattern.MatchString(id.Version) {
			return SecretID{}, fmt.Errorf("%q is not a secret version (32 hex digits)", id.Version)
		}
	}
	return id, nil
}

// Options configure Clients.
type Options struct {
	// ClientID is the managed identity to use; empty means the host's
	// system-assigned identity. Used when Credential is nil.
	ClientID string

	// Credential, when set, replaces the managed identity.
	Credential *CredentialOptions

	// TrustedCAFile is a PEM file of CAs trusted for the vault's TLS,
	// beside the system roots.
	TrustedCAFile string

	// DisableChallengeResourceVerification overrides the default: off for
	// a vault reached by IP address or a name without a parent domain,
	// where the SDK's check can never pass, on otherwise.
	DisableChallengeResourceVerification *bool

	// HTTPClient, when set, reaches the vaults and the identity agent
	// instead of a client built from TrustedCAFile: for a process that
	// must dial in its own way (tests reaching NAME.localhost, as a hosts
	// file entry would).
	HTTPClient *http.Client
}

// CredentialOptions choose an azidentity credential other than the
// managed identity. The secret is read from a file or the environment at
// construction, never from the configuration itself.
type CredentialOptions struct {
	// Type is ClientSecret, WorkloadIdentity or ManagedIdentity.
	Type             string
	TenantID         string
	ClientID         string
	AuthorityHost    string
	ClientSecretFile string
	ClientSecretEnv  string
	TokenFile        string
}

// Clients hands out one azsecrets client per vault, sharing one
// credential (and so one token cache) and one HTTP client. It is safe for
// concurrent use.
type Clients struct {
	opts Options
	http *http.Client
	cred azcore.TokenCredential

	mu      sync.Mutex
	clients map[string]*azsecrets.Client
}

// NewClients builds the credential and the HTTP client. It reads the CA
// file and any secret file, and does no network I/O.
func NewClients(opts Options) (*Clients, error) {
	hc := opts.HTTPClient
	if hc == nil {
		var err error
		if hc, err = client.Transport(opts.TrustedCAFile); err != nil {
			return nil, err
		}
	}
	cred, err := newCredential(opts, hc)
	if err != nil {
		return nil, err
	}
	return &Clients{opts: opts, http: hc, cred: cred, clients: map[string]*azsecrets.Client{}}, nil
}

// Secrets returns the client for vaultURL.
func (c *Clients) Secrets(vaultURL string) (*azsecrets.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sc, ok := c.clients[vaultURL]; ok {
		return sc, nil
	}
	sc, err := azsecrets.NewClient(vaultURL, c.cred, &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: c.http, Retry: retry},
		DisableChallengeResourceVerification: !c.VerifyChallenge(vaultURL),
	})
	if err != nil {
		return nil, fmt.Errorf("making a client for %s: %w", vaultURL, err)
	}
	c.clients[vaultURL] = sc
	return sc, nil
}

// VerifyChallenge reports whether a client of vaultURL checks that the
// resource its bearer challenge names is a parent domain of its host, as
// the SDK does unless told otherwise.
func (c *Clients) VerifyChallenge(vaultURL string) bool {
	if c.opts.DisableChallengeResourceVerification != nil {
		return !*c.opts.DisableChallengeResourceVerification
	}
	return !client.NeedsVerificationOff(vaultURL)
}

// Credential is the credential every client shares.
func (c *Clients) Credential() azcore.TokenCredential { return c.cred }

// HTTPClient is the HTTP client every client shares; it trusts the
// vaults' TLS.
func (c *Clients) HTTPClient() *http.Client { return c.http }

// retry is the SDK's retry policy for the gateway's requests: fewer and
// shorter retries than the SDK's default (three, from 0.8 s doubling),
// because the gateway retries a failed read itself, with backoff, and a
// read that waits out the SDK's retries holds up a refresh someone asked
// for.
var retry = policy.RetryOptions{MaxRetries: 1, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: time.Second}

func newCredential(opts Options, hc *http.Client) (azcore.TokenCredential, error) {
	co := opts.Credential
	if co == nil || co.Type == "" || co.Type == "ManagedIdentity" {
		id := opts.ClientID
		if co != nil && co.ClientID != "" {
			id = co.ClientID
		}
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: hc, Retry: retry}}
		if id != "" {
			mo.ID = azidentity.ClientID(id)
		}
		return azidentity.NewManagedIdentityCredential(mo)
	}

	clientOpts := azcore.ClientOptions{Transport: hc, Retry: retry}
	if co.AuthorityHost != "" {
		clientOpts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: co.AuthorityHost}
	}
	// Instance discovery asks Microsoft's hosts about the authority, which
	// they cannot vouch for unless it is theirs.
	discoveryOff := co.AuthorityHost != ""

	switch co.Type {
	case "ClientSecret":
		secret, err := readClientSecret(co)
		if err != nil {
			return nil, err
		}
		return azidentity.NewClientSecretCredential(co.TenantID, co.ClientID, secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: clientOpts, DisableInstanceDiscovery: discoveryOff})
	case "WorkloadIdentity":
		return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: clientOpts, ClientID: co.ClientID, TenantID: co.TenantID,
			TokenFilePath: co.TokenFile, DisableInstanceDiscovery: discoveryOff,
		})
	}
	return nil, fmt.Errorf("making a credential: unknown type %q", co.Type)
}

// readClientSecret reads the client secret from its file or variable.
// Errors name where it was looked for, never what was found.
func readClientSecret(co *CredentialOptions) (string, error) {
	if co.ClientSecretFile != "" {
		b, err := os.ReadFile(co.ClientSecretFile)
		if err != nil {
			return "", fmt.Errorf("reading the client secret: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("reading the client secret: %s is empty", co.ClientSecretFile)
		}
		return s, nil
	}
	s := strings.TrimSpace(os.Getenv(co.ClientSecretEnv))
	if s == "" {
		return "", fmt.Errorf("reading the client secret: environment variable %s is not set", co.ClientSecretEnv)
	}
	return s, nil
}

// Kind says what a secret holds.
type Kind int

// Kinds of secret.
const (
	// KeyPair is a certificate with its private key (a listener's).
	KeyPair Kind = iota
	// Roots is one or more CA certificates (a trusted root's).
	Roots
)

// Source is a certs.Source that reads one vault secret.
type Source struct {
	clients *Clients
	id      SecretID
	kind    Kind
}

// NewSource returns a source for id, decoded as kind.
func NewSource(c *Clients, id SecretID, kind Kind) *Source {
	return &Source{clients: c, id: id, kind: kind}
}

// Describe returns the secret's id as configured.
func (s *Source) Describe() string { return s.id.String() }

// ID returns the secret's id.
func (s *Source) ID() SecretID { return s.id }

// Fetch reads the secret (its newest version when the id has none) and
// decodes it.
func (s *Source) Fetch(ctx context.Context) (*certs.Material, error) {
	sc, err := s.clients.Secrets(s.id.VaultURL)
	if err != nil {
		return nil, err
	}
	resp, err := sc.GetSecret(ctx, s.id.Name, s.id.Version, nil)
	if err != nil {
		return nil, &certs.Error{Code: Classify(err), Err: fmt.Errorf("reading %s: %s", s.id, describe(err))}
	}
	if resp.Value == nil {
		return nil, certs.Errorf(certs.CertificateUnusable, "reading %s: the secret has no value", s.id)
	}
	version := ""
	if resp.ID != nil {
		version = resp.ID.Version()
	}
	contentType := ""
	if resp.ContentType != nil {
		contentType = *resp.ContentType
	}

	m, err := s.decode(contentType, *resp.Value)
	if err != nil {
		return nil, certs.Errorf(certs.CertificateUnusable, "decoding %s (version %s): %w", s.id, version, err)
	}
	m.Version = version
	return m, nil
}

func (s *Source) decode(contentType, value string) (*certs.Material, error) {
	if s.kind == Roots {
		roots, err := certs.ParseRoots(value)
		if err != nil {
			return nil, err
		}
		return &certs.Material{Roots: roots}, nil
	}
	return certs.ParseSecret(contentType, value)
}

// describe shortens an SDK error to what an operator needs: the status and
// Key Vault's error code, or the credential's first line. The SDK's own
// text repeats the request and the whole body.
func describe(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		code := re.ErrorCode
		if inner := innerCode(re); inner != "" && inner != code {
			code += ": " + inner
		}
		return fmt.Sprintf("%d %s (%s)", re.StatusCode, http.StatusText(re.StatusCode), code)
	}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) {
		first, _, _ := strings.Cut(af.Error(), "\n")
		return "authentication failed: " + first
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	return first
}
