// Package config is the gateway's configuration: the properties of Azure's
// Microsoft.Network/applicationGateways resource, with siblings referred to
// by name, plus the few settings keygate adds (how to reach the vault, the
// admin listener, the access log). Load reads YAML or JSON strictly, in
// keygate's flat shape or in the ARM resource's own shape, and validates
// it; every error names its place in the file.
package config

import (
	"crypto/x509"
	"log/slog"

	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/keyvault"
	"github.com/keygate/keygate/internal/gateway/tlspolicy"
)

// Gateway is a whole gateway configuration. After Load, every Ref holds a
// plain name that is known to exist, and defaults are filled in.
type Gateway struct {
	armResource

	// Name names the gateway in logs and metrics.
	Name string `json:"name"`

	// Identity is the managed identity the gateway authenticates to the
	// vault as.
	Identity Identity `json:"identity"`

	// KeyVault says how to reach vaults that sslCertificates and
	// trustedRootCertificates reference (keygate's own setting).
	KeyVault KeyVault `json:"keyVault"`

	// SSLPolicy is the TLS policy of every HTTPS listener. Nil means
	// AppGwSslPolicy20220101.
	SSLPolicy *SSLPolicy `json:"sslPolicy"`

	// EnableHTTP2 offers HTTP/2 to clients through ALPN. Nil means true.
	EnableHTTP2 *bool `json:"enableHttp2"`

	// TLSSessionResumption is Enabled (the default) or Disabled (keygate's
	// own setting). Disabled issues no session tickets, so every
	// connection makes a full handshake with fresh keys.
	TLSSessionResumption string `json:"tlsSessionResumption"`

	FrontendIPConfigurations      []FrontendIPConfiguration `json:"frontendIPConfigurations"`
	FrontendPorts                 []FrontendPort            `json:"frontendPorts"`
	SSLCertificates               []SSLCertificate          `json:"sslCertificates"`
	TrustedRootCertificates       []TrustedRootCertificate  `json:"trustedRootCertificates"`
	HTTPListeners                 []HTTPListener            `json:"httpListeners"`
	BackendAddressPools           []BackendAddressPool      `json:"backendAddressPools"`
	BackendHTTPSettingsCollection []BackendHTTPSettings     `json:"backendHttpSettingsCollection"`
	Probes                        []Probe                   `json:"probes"`
	RequestRoutingRules           []RequestRoutingRule      `json:"requestRoutingRules"`
	URLPathMaps                   []URLPathMap              `json:"urlPathMaps"`
	RedirectConfigurations        []RedirectConfiguration   `json:"redirectConfigurations"`

	// Admin is the admin listener: metrics, readiness and status
	// (keygate's own setting).
	Admin Admin `json:"admin"`

	// AccessLog is where one line per request goes (keygate's own setting).
	AccessLog AccessLog `json:"accessLog"`

	// ShutdownTimeout is how many seconds a graceful shutdown waits for
	// in-flight requests. Default 30.
	ShutdownTimeout int `json:"shutdownTimeout"`

	// KeyVaultPollInterval is how often each vault certificate is read
	// again (keygate's own setting), each at its own jittered time: a Go
	// duration ("4h", "90s") or a number of seconds. Default 4 hours, as
	// Application Gateway polls; at least 1 second.
	KeyVaultPollInterval Duration `json:"keyVaultPollInterval"`

	// OnKeyVaultError says what a listener does when the vault refuses its
	// certificate (access revoked, secret disabled or deleted, vault
	// deleted or behind a firewall, identity not found): KeepLastGood (the
	// default) serves the last good certificate and reports the
	// condition; DisableListener stops serving it, as Application Gateway
	// does, until it reads again, and reads listener certificates at least
	// every 50 seconds so that it stops within a minute.
	OnKeyVaultError string `json:"onKeyVaultError"`

	// CertificateCache keeps an encrypted copy of each vault certificate
	// on disk, so that a gateway restarted while its vault is down serves
	// (keygate's own setting). Off unless Path is set.
	CertificateCache CertificateCache `json:"certificateCache"`

	policy tlspolicy.Policy
}

// armResource holds the top-level properties of an exported Azure
// resource that keygate does not use.
type armResource struct {
	armChild
	Location                            Ignored `json:"location"`
	Tags                                Ignored `json:"tags"`
	Zones                               Ignored `json:"zones"`
	SKU                                 Ignored `json:"sku"`
	GatewayIPConfigurations             Ignored `json:"gatewayIPConfigurations"`
	OperationalState                    Ignored `json:"operationalState"`
	ResourceGUID                        Ignored `json:"resourceGuid"`
	AutoscaleConfiguration              Ignored `json:"autoscaleConfiguration"`
	PrivateEndpointConnections          Ignored `json:"privateEndpointConnections"`
	PrivateLinkConfigurations           Ignored `json:"privateLinkConfigurations"`
	DefaultPredefinedSSLPolicy          Ignored `json:"defaultPredefinedSslPolicy"`
	BackendSettingsCollection           Ignored `json:"backendSettingsCollection"`
	Listeners                           Ignored `json:"listeners"`
	RoutingRules                        Ignored `json:"routingRules"`
	SSLProfiles                         Ignored `json:"sslProfiles"`
	RewriteRuleSets                     Ignored `json:"rewriteRuleSets"`
	AuthenticationCertificates          Ignored `json:"authenticationCertificates"`
	TrustedClientCertificates           Ignored `json:"trustedClientCertificates"`
	WebApplicationFirewallConfiguration Ignored `json:"webApplicationFirewallConfiguration"`
}

// armChild holds the read-only properties every child of an exported
// resource carries.
type armChild struct {
	ID                Ignored `json:"id"`
	Etag              Ignored `json:"etag"`
	Type              Ignored `json:"type"`
	ProvisioningState Ignored `json:"provisioningState"`
}

// Identity is the gateway's managed identity. ClientID selects a
// user-assigned identity; empty means the host's system-assigned one. In
// the ARM shape the identity is {"type": "UserAssigned",
// "userAssignedIdentities": {RESOURCE-ID: {"clientId": ...}}}; Load copies
// the one entry's clientId into ClientID.
type Identity struct {
	Type                   string                          `json:"type"`
	ClientID               string                          `json:"clientId"`
	UserAssignedIdentities map[string]UserAssignedIdentity `json:"userAssignedIdentities"`
	PrincipalID            Ignored                         `json:"principalId"`
	TenantID               Ignored                         `json:"tenantId"`
}

// UserAssignedIdentity is one entry of Identity.UserAssignedIdentities.
type UserAssignedIdentity struct {
	ClientID    string  `json:"clientId"`
	PrincipalID Ignored `json:"principalId"`
}

// KeyVault says how the gateway reaches its vaults.
type KeyVault struct {
	// TrustedCAFile is a PEM file of CA certificates to trust for the
	// vaults' TLS, beside the system roots.
	TrustedCAFile string `json:"trustedCaFile"`

	// Credential chooses how to obtain tokens. Nil means a managed
	// identity (Identity.ClientID) through the host's identity agent.
	Credential *Credential `json:"credential"`

	// DisableChallengeResourceVerification turns off the SDK's check that
	// the vault's host lies under the resource its bearer challenge names.
	// Nil means off for a vault reached by IP address or by a name with no
	// parent domain (where the check can never pass) and on otherwise.
	DisableChallengeResourceVerification *bool `json:"disableChallengeResourceVerification"`
}

// Credential types.
const (
	CredentialManagedIdentity  = "ManagedIdentity"
	CredentialClientSecret     = "ClientSecret"
	CredentialWorkloadIdentity = "WorkloadIdentity"
)

// Credential is an azidentity credential other than the default managed
// identity, for hosts where no identity agent runs. Secrets are never
// written in the file: a client secret is read from ClientSecretFile or
// the environment variable ClientSecretEnv, a workload identity's
// assertion from TokenFile.
type Credential struct {
	Type             string `json:"type"`
	TenantID         string `json:"tenantId"`
	ClientID         string `json:"clientId"`
	AuthorityHost    string `json:"authorityHost"`
	ClientSecretFile string `json:"clientSecretFile"`
	ClientSecretEnv  string `json:"clientSecretEnv"`
	TokenFile        string `json:"tokenFile"`

	// ClientSecret is here only so that a secret written inline gets an
	// error that says what to do instead; Load refuses it.
	ClientSecret Secret `json:"clientSecret"`
}

// SSLPolicy is the Azure sslPolicy: a predefined policy by name, or a
// custom one with a minimum protocol version and cipher suites.
type SSLPolicy struct {
	PolicyType           string   `json:"policyType"`
	PolicyName           string   `json:"policyName"`
	MinProtocolVersion   string   `json:"minProtocolVersion"`
	CipherSuites         []string `json:"cipherSuites"`
	DisabledSSLProtocols []string `json:"disabledSslProtocols"`
}

// FrontendIPConfiguration is an address the gateway listens on.
// PrivateIPAddress is the local address to bind; empty means every
// address of the host.
type FrontendIPConfiguration struct {
	armChild
	Name                      string  `json:"name"`
	PrivateIPAddress          string  `json:"privateIPAddress"`
	PrivateIPAllocationMethod Ignored `json:"privateIPAllocationMethod"`
	PublicIPAddress           Ignored `json:"publicIPAddress"`
	Subnet                    Ignored `json:"subnet"`
	PrivateLinkConfiguration  Ignored `json:"privateLinkConfiguration"`
	HTTPListeners             Ignored `json:"httpListeners"`
}

// FrontendPort is a port listeners listen on.
type FrontendPort struct {
	armChild
	Name          string  `json:"name"`
	Port          int     `json:"port"`
	HTTPListeners Ignored `json:"httpListeners"`
}

// SSLCertificate is a listener certificate: inline PFX data with its
// password, or a reference to a vault secret (a certificate's secret or a
// plain secret holding PFX or PEM), with or without a version.
type SSLCertificate struct {
	armChild
	Name             string  `json:"name"`
	Data             string  `json:"data"`
	Password         Secret  `json:"password"`
	KeyVaultSecretID string  `json:"keyVaultSecretId"`
	PublicCertData   Ignored `json:"publicCertData"`
	HTTPListeners    Ignored `json:"httpListeners"`

	material *certs.Material
	secretID keyvault.SecretID
}

// Secret is a string that must not be shown: it prints as "[redacted]".
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// LogValue hides the value from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// TrustedRootCertificate is a CA certificate that HTTPS backends are
// verified against: base64 DER or PEM in Data, or a vault secret holding
// one.
type TrustedRootCertificate struct {
	armChild
	Name             string `json:"name"`
	Data             string `json:"data"`
	KeyVaultSecretID string `json:"keyVaultSecretId"`

	roots    []*x509.Certificate
	secretID keyvault.SecretID
}

// Listener protocols and backend protocols.
const (
	ProtocolHTTP  = "Http"
	ProtocolHTTPS = "Https"
)

// HTTPListener accepts requests on a frontend port for some host names
// (any host when none is given: a basic listener).
type HTTPListener struct {
	armChild
	Name                        string   `json:"name"`
	FrontendIPConfiguration     Ref      `json:"frontendIPConfiguration"`
	FrontendPort                Ref      `json:"frontendPort"`
	Protocol                    string   `json:"protocol"`
	HostName                    string   `json:"hostName"`
	HostNames                   []string `json:"hostNames"`
	RequireServerNameIndication bool     `json:"requireServerNameIndication"`
	SSLCertificate              Ref      `json:"sslCertificate"`

	address string
}

// Address is the host:port the listener binds (host empty for every
// address). Valid after Load.
func (l *HTTPListener) Address() string { return l.address }

// Hosts returns the listener's host name patterns: HostNames, or
// HostName alone; none for a basic listener.
func (l *HTTPListener) Hosts() []string {
	if l.HostName != "" {
		return []string{l.HostName}
	}
	return l.HostNames
}

// BackendAddressPool is a set of backend servers.
type BackendAddressPool struct {
	armChild
	Name                    string           `json:"name"`
	BackendAddresses        []BackendAddress `json:"backendAddresses"`
	BackendIPConfigurations Ignored          `json:"backendIPConfigurations"`
	RequestRoutingRules     Ignored          `json:"requestRoutingRules"`
}

// BackendAddress is one backend server, by IP address or by DNS name.
type BackendAddress struct {
	IPAddress string `json:"ipAddress"`
	FQDN      string `json:"fqdn"`
}

// Host returns the address's IP address or DNS name.
func (a BackendAddress) Host() string {
	if a.IPAddress != "" {
		return a.IPAddress
	}
	return a.FQDN
}

// Cookie-based affinity settings.
const (
	AffinityEnabled  = "Enabled"
	AffinityDisabled = "Disabled"
)

// BackendHTTPSettings says how to talk to a pool's servers.
type BackendHTTPSettings struct {
	armChild
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`

	// RequestTimeout is in seconds; default 20.
	RequestTimeout int `json:"requestTimeout"`

	// HostName is the Host header sent to the backend; with
	// PickHostNameFromBackendAddress the server's own name is sent
	// instead. Neither keeps the client's Host.
	HostName                       string `json:"hostName"`
	PickHostNameFromBackendAddress bool   `json:"pickHostNameFromBackendAddress"`

	CookieBasedAffinity string `json:"cookieBasedAffinity"`

	// AffinityCookieName defaults to ApplicationGatewayAffinity.
	AffinityCookieName string `json:"affinityCookieName"`

	ConnectionDraining *ConnectionDraining `json:"connectionDraining"`

	TrustedRootCertificates []Ref `json:"trustedRootCertificates"`

	Probe        Ref     `json:"probe"`
	ProbeEnabled *bool   `json:"probeEnabled"`
	Path         Ignored `json:"path"`

	RequestRoutingRules Ignored `json:"requestRoutingRules"`
	URLPathMaps         Ignored `json:"urlPathMaps"`
	PathRules           Ignored `json:"pathRules"`
}

// ConnectionDraining keeps sessions on a server that turns unhealthy for
// DrainTimeoutInSec seconds, so they can finish.
type ConnectionDraining struct {
	Enabled           bool `json:"enabled"`
	DrainTimeoutInSec int  `json:"drainTimeoutInSec"`
}

// Probe is a custom health probe.
type Probe struct {
	armChild
	Name                                string      `json:"name"`
	Protocol                            string      `json:"protocol"`
	Host                                string      `json:"host"`
	Path                                string      `json:"path"`
	Port                                int         `json:"port"`
	Interval                            int         `json:"interval"`
	Timeout                             int         `json:"timeout"`
	UnhealthyThreshold                  int         `json:"unhealthyThreshold"`
	PickHostNameFromBackendHTTPSettings bool        `json:"pickHostNameFromBackendHttpSettings"`
	Match                               *ProbeMatch `json:"match"`
	MinServers                          Ignored     `json:"minServers"`
	BackendHTTPSettings                 Ignored     `json:"backendHttpSettings"`
}

// ProbeMatch says which answers are healthy: a status code in one of
// StatusCodes ("200" or "200-399"), and a body containing Body if set.
type ProbeMatch struct {
	StatusCodes []string `json:"statusCodes"`
	Body        string   `json:"body"`
}

// Rule types.
const (
	RuleBasic            = "Basic"
	RulePathBasedRouting = "PathBasedRouting"
)

// RequestRoutingRule binds a listener to a backend (pool and settings), a
// redirect, or a URL path map.
type RequestRoutingRule struct {
	armChild
	Name                  string `json:"name"`
	RuleType              string `json:"ruleType"`
	Priority              int    `json:"priority"`
	HTTPListener          Ref    `json:"httpListener"`
	BackendAddressPool    Ref    `json:"backendAddressPool"`
	BackendHTTPSettings   Ref    `json:"backendHttpSettings"`
	RedirectConfiguration Ref    `json:"redirectConfiguration"`
	URLPathMap            Ref    `json:"urlPathMap"`
}

// URLPathMap routes by path, the first matching path rule winning.
type URLPathMap struct {
	armChild
	Name                         string     `json:"name"`
	DefaultBackendAddressPool    Ref        `json:"defaultBackendAddressPool"`
	DefaultBackendHTTPSettings   Ref        `json:"defaultBackendHttpSettings"`
	DefaultRedirectConfiguration Ref        `json:"defaultRedirectConfiguration"`
	PathRules                    []PathRule `json:"pathRules"`
}

// PathRule sends the paths matching Paths to a backend or a redirect. A
// path is exact, or ends in * to match everything that starts with it.
type PathRule struct {
	armChild
	Name                  string   `json:"name"`
	Paths                 []string `json:"paths"`
	BackendAddressPool    Ref      `json:"backendAddressPool"`
	BackendHTTPSettings   Ref      `json:"backendHttpSettings"`
	RedirectConfiguration Ref      `json:"redirectConfiguration"`
}

// Redirect types.
const (
	RedirectPermanent = "Permanent"
	RedirectFound     = "Found"
	RedirectSeeOther  = "SeeOther"
	RedirectTemporary = "Temporary"
)

// RedirectConfiguration answers with a redirect to a listener or a URL.
type RedirectConfiguration struct {
	armChild
	Name                string  `json:"name"`
	RedirectType        string  `json:"redirectType"`
	TargetListener      Ref     `json:"targetListener"`
	TargetURL           string  `json:"targetUrl"`
	IncludePath         bool    `json:"includePath"`
	IncludeQueryString  bool    `json:"includeQueryString"`
	RequestRoutingRules Ignored `json:"requestRoutingRules"`
	URLPathMaps         Ignored `json:"urlPathMaps"`
	PathRules           Ignored `json:"pathRules"`
}

// Admin is the admin listener.
type Admin struct {
	// Address is host:port; default 127.0.0.1:9090. "off" turns it off.
	Address OffOr `json:"address"`
}

// Values of OnKeyVaultError.
const (
	KeepLastGood    = "KeepLastGood"
	DisableListener = "DisableListener"
)

// CertificateCache is the local cache of vault certificates.
type CertificateCache struct {
	// Path is the folder the cache is kept in, created with mode 0700;
	// empty means no cache. Its key comes from the host (keygate gateway
	// run --cache-key-file, or KEYGATE_GATEWAY_CACHE_KEY), never from
	// this file.
	Path string `json:"path"`
}

// AccessLog says where request lines go.
type AccessLog struct {
	// Path is a file to append JSON lines to; empty means standard
	// output, "off" turns the log off.
	Path OffOr `json:"path"`
}
