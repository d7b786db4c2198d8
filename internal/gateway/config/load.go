package config

import (
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/keyvault"
	"github.com/keygate/keygate/internal/gateway/tlspolicy"
)

// Error is one problem in a configuration, at Path (such as
// "httpListeners[2].sslCertificate"; empty for the file as a whole).
type Error struct {
	Path string
	Msg  string
}

func (e Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors are all the problems found in a configuration, in file order.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads and validates the configuration file at path. A file that
// does not validate returns Errors, each naming its place in the file.
func Load(path string) (*Gateway, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return Parse(data)
}

// Parse decodes YAML or JSON (flat or in the ARM resource's shape),
// validates it and fills in defaults. Errors are Errors.
func Parse(data []byte) (*Gateway, error) {
	g, errs := decodeDocument(data)
	if len(errs) > 0 {
		return nil, errs
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return g, nil
}

// Validate checks a configuration built in code (as `keygate up` builds
// one), resolves its references and fills in defaults, as Parse does for
// a file. Errors are Errors. Call it once, before New.
func (g *Gateway) Validate() error {
	v := newValidator(g)
	v.validate()
	if len(v.errs) > 0 {
		return v.errs
	}
	g.setDefaults()
	return nil
}

// Policy returns the resolved TLS policy. Valid after Load.
func (g *Gateway) Policy() tlspolicy.Policy { return g.policy }

// SessionResumption reports whether TLS sessions may be resumed.
func (g *Gateway) SessionResumption() bool { return g.TLSSessionResumption != "Disabled" }

// HTTP2 reports whether HTTP/2 is offered to clients.
func (g *Gateway) HTTP2() bool { return g.EnableHTTP2 == nil || *g.EnableHTTP2 }

// Inline returns the decoded inline certificate, or nil for a
// vault-referenced one. Valid after Load.
func (c *SSLCertificate) Inline() *certs.Material { return c.material }

// SecretID returns the parsed keyVaultSecretId, valid after Load when
// KeyVaultSecretID is set.
func (c *SSLCertificate) SecretID() keyvault.SecretID { return c.secretID }

// Inline returns the decoded inline roots, or nil for vault-referenced
// ones. Valid after Load.
func (c *TrustedRootCertificate) Inline() []*x509.Certificate { return c.roots }

// SecretID returns the parsed keyVaultSecretId, valid after Load when
// KeyVaultSecretID is set.
func (c *TrustedRootCertificate) SecretID() keyvault.SecretID { return c.secretID }

// KeyVaultOptions returns the options for keyvault.NewClients.
func (g *Gateway) KeyVaultOptions() keyvault.Options {
	o := keyvault.Options{
		ClientID:                             g.Identity.ClientID,
		TrustedCAFile:                        g.KeyVault.TrustedCAFile,
		DisableChallengeResourceVerification: g.KeyVault.DisableChallengeResourceVerification,
	}
	if c := g.KeyVault.Credential; c != nil {
		o.Credential = &keyvault.CredentialOptions{
			Type: c.Type, TenantID: c.TenantID, ClientID: c.ClientID, AuthorityHost: c.AuthorityHost,
			ClientSecretFile: c.ClientSecretFile, ClientSecretEnv: c.ClientSecretEnv, TokenFile: c.TokenFile,
		}
	}
	return o
}

// UsesKeyVault reports whether any certificate is read from a vault.
func (g *Gateway) UsesKeyVault() bool {
	for _, c := range g.SSLCertificates {
		if c.KeyVaultSecretID != "" {
			return true
		}
	}
	for _, c := range g.TrustedRootCertificates {
		if c.KeyVaultSecretID != "" {
			return true
		}
	}
	return false
}

// Defaults.
const (
	DefaultRequestTimeout     = 20
	DefaultProbeInterval      = 30
	DefaultProbeTimeout       = 30
	DefaultUnhealthyThreshold = 3
	DefaultAffinityCookie     = "ApplicationGatewayAffinity"
	DefaultAdminAddress       = "127.0.0.1:9090"
	DefaultShutdownTimeout    = 30

	DefaultKeyVaultPollInterval = Duration(4 * time.Hour)
	MinKeyVaultPollInterval     = time.Second
)

func (g *Gateway) setDefaults() {
	for i := range g.BackendHTTPSettingsCollection {
		s := &g.BackendHTTPSettingsCollection[i]
		if s.RequestTimeout == 0 {
			s.RequestTimeout = DefaultRequestTimeout
		}
		if s.CookieBasedAffinity == "" {
			s.CookieBasedAffinity = AffinityDisabled
		}
		if s.AffinityCookieName == "" {
			s.AffinityCookieName = DefaultAffinityCookie
		}
	}
	for i := range g.Probes {
		p := &g.Probes[i]
		if p.Interval == 0 {
			p.Interval = DefaultProbeInterval
		}
		if p.Timeout == 0 {
			p.Timeout = DefaultProbeTimeout
		}
		if p.UnhealthyThreshold == 0 {
			p.UnhealthyThreshold = DefaultUnhealthyThreshold
		}
	}
	if g.Admin.Address == "" {
		g.Admin.Address = DefaultAdminAddress
	}
	if g.ShutdownTimeout == 0 {
		g.ShutdownTimeout = DefaultShutdownTimeout
	}
	if g.KeyVaultPollInterval == 0 {
		g.KeyVaultPollInterval = DefaultKeyVaultPollInterval
	}
	if g.OnKeyVaultError == "" {
		g.OnKeyVaultError = KeepLastGood
	}
}

// PollInterval returns keyVaultPollInterval. Valid after Load.
func (g *Gateway) PollInterval() time.Duration { return time.Duration(g.KeyVaultPollInterval) }

// DisablesListeners reports whether onKeyVaultError is DisableListener.
func (g *Gateway) DisablesListeners() bool { return g.OnKeyVaultError == DisableListener }
