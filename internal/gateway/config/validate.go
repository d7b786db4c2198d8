package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/hostmatch"
	"github.com/keygate/keygate/internal/gateway/keyvault"
	"github.com/keygate/keygate/internal/gateway/tlspolicy"
)

// Collections that references point into.
const (
	collFrontendIPs = "frontendIPConfigurations"
	collPorts       = "frontendPorts"
	collCerts       = "sslCertificates"
	collRoots       = "trustedRootCertificates"
	collListeners   = "httpListeners"
	collPools       = "backendAddressPools"
	collSettings    = "backendHttpSettingsCollection"
	collProbes      = "probes"
	collRules       = "requestRoutingRules"
	collPathMaps    = "urlPathMaps"
	collRedirects   = "redirectConfigurations"
)

// singular names one member of a collection in messages.
var singular = map[string]string{
	collFrontendIPs: "frontendIPConfiguration",
	collPorts:       "frontendPort",
	collCerts:       "sslCertificate",
	collRoots:       "trustedRootCertificate",
	collListeners:   "httpListener",
	collPools:       "backendAddressPool",
	collSettings:    "backendHttpSettings",
	collProbes:      "probe",
	collRules:       "requestRoutingRule",
	collPathMaps:    "urlPathMap",
	collRedirects:   "redirectConfiguration",
}

// validator checks a decoded Gateway, resolving references to plain names
// as it goes, and collects every error rather than stopping at the first.
type validator struct {
	g     *Gateway
	errs  Errors
	names map[string]map[string]int
}

func newValidator(g *Gateway) *validator {
	return &validator{g: g, names: map[string]map[string]int{}}
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) validate() {
	v.collectNames()
	v.identity()
	v.keyVault()
	v.sslPolicy()
	v.frontendIPs()
	v.frontendPorts()
	v.sslCertificates()
	v.trustedRoots()
	v.listeners()
	v.pools()
	v.settings()
	v.probes()
	v.redirects()
	v.pathMaps()
	v.rules()
	v.listenerClaims()
	v.keygateSettings()
}

// collectNames indexes every collection by name, reporting missing and
// duplicate names.
func (v *validator) collectNames() {
	g := v.g
	add := func(coll string, n int, name func(int) string) {
		idx := map[string]int{}
		for i := range n {
			path := fmt.Sprintf("%s[%d].name", coll, i)
			nm := name(i)
			if nm == "" {
				v.fail(path, "missing")
				continue
			}
			if j, dup := idx[nm]; dup {
				v.fail(path, "%q is already the name of %s[%d]", nm, coll, j)
				continue
			}
			idx[nm] = i
		}
		v.names[coll] = idx
	}
	add(collFrontendIPs, len(g.FrontendIPConfigurations), func(i int) string { return g.FrontendIPConfigurations[i].Name })
	add(collPorts, len(g.FrontendPorts), func(i int) string { return g.FrontendPorts[i].Name })
	add(collCerts, len(g.SSLCertificates), func(i int) string { return g.SSLCertificates[i].Name })
	add(collRoots, len(g.TrustedRootCertificates), func(i int) string { return g.TrustedRootCertificates[i].Name })
	add(collListeners, len(g.HTTPListeners), func(i int) string { return g.HTTPListeners[i].Name })
	add(collPools, len(g.BackendAddressPools), func(i int) string { return g.BackendAddressPools[i].Name })
	add(collSettings, len(g.BackendHTTPSettingsCollection), func(i int) string { return g.BackendHTTPSettingsCollection[i].Name })
	add(collProbes, len(g.Probes), func(i int) string { return g.Probes[i].Name })
	add(collRules, len(g.RequestRoutingRules), func(i int) string { return g.RequestRoutingRules[i].Name })
	add(collPathMaps, len(g.URLPathMaps), func(i int) string { return g.URLPathMaps[i].Name })
	add(collRedirects, len(g.RedirectConfigurations), func(i int) string { return g.RedirectConfigurations[i].Name })
}

// ref resolves a reference into coll: an ARM id becomes its name, and the
// name must exist. It reports whether r now names a member.
func (v *validator) ref(path string, r *Ref, coll string, required bool) bool {
	s := string(*r)
	if s == "" {
		if required {
			v.fail(path, "missing: name a %s", singular[coll])
		}
		return false
	}
	if strings.Contains(s, "/") {
		parts := strings.Split(strings.TrimRight(s, "/"), "/")
		if len(parts) < 2 || !strings.EqualFold(parts[len(parts)-2], coll) {
			v.fail(path, "%q does not refer to %s", s, coll)
			return false
		}
		s = parts[len(parts)-1]
		*r = Ref(s)
	}
	if _, ok := v.names[coll][s]; !ok {
		v.fail(path, "no %s named %q", singular[coll], s)
		return false
	}
	return true
}

// index returns the position of the member r names; r must be resolved.
func (v *validator) index(coll string, r Ref) (int, bool) {
	i, ok := v.names[coll][string(r)]
	return i, ok && r != ""
}

// oneOf checks that *s is one of allowed, ignoring case, and normalizes
// its case. An empty value is an error when required.
func (v *validator) oneOf(path string, s *string, required bool, allowed ...string) {
	if *s == "" {
		if required {
			v.fail(path, "missing: give one of %s", strings.Join(allowed, ", "))
		}
		return
	}
	for _, a := range allowed {
		if strings.EqualFold(*s, a) {
			*s = a
			return
		}
	}
	v.fail(path, "%q is not one of %s", *s, strings.Join(allowed, ", "))
}

func (v *validator) inRange(path string, n, lo, hi int, required bool) {
	if n == 0 && !required {
		return
	}
	if n < lo || n > hi {
		if n == 0 {
			v.fail(path, "missing: give a number from %d to %d", lo, hi)
			return
		}
		v.fail(path, "%d is out of range %d to %d", n, lo, hi)
	}
}

func (v *validator) identity() {
	id := &v.g.Identity
	v.oneOf("identity.type", &id.Type, false, "UserAssigned", "SystemAssigned", "SystemAssigned, UserAssigned", "None")
	if id.ClientID != "" || len(id.UserAssignedIdentities) == 0 {
		return
	}
	if len(id.UserAssignedIdentities) > 1 {
		v.fail("identity.userAssignedIdentities", "several identities: set identity.clientId to the one to use")
		return
	}
	for _, ua := range id.UserAssignedIdentities {
		id.ClientID = ua.ClientID
	}
}

func (v *validator) keyVault() {
	kv := &v.g.KeyVault
	if kv.TrustedCAFile != "" {
		if _, err := os.Stat(kv.TrustedCAFile); err != nil {
			v.fail("keyVault.trustedCaFile", "%v", errors.Unwrap(err))
		}
	}
	c := kv.Credential
	if c == nil {
		return
	}
	const p = "keyVault.credential"
	v.oneOf(p+".type", &c.Type, true, CredentialManagedIdentity, CredentialClientSecret, CredentialWorkloadIdentity)
	if c.ClientSecret != "" {
		v.fail(p+".clientSecret", "a secret is never written in the configuration: put it in a file (clientSecretFile) or an environment variable (clientSecretEnv)")
	}
	if c.AuthorityHost != "" {
		if u, err := url.Parse(c.AuthorityHost); err != nil || u.Scheme != "https" || u.Host == "" {
			v.fail(p+".authorityHost", "want an https URL such as https://login.example/")
		}
	}
	switch c.Type {
	case CredentialClientSecret:
		v.required(p+".tenantId", c.TenantID)
		v.required(p+".clientId", c.ClientID)
		if (c.ClientSecretFile == "") == (c.ClientSecretEnv == "") {
			v.fail(p, "give the secret's place: clientSecretFile or clientSecretEnv, one of them")
		}
	case CredentialWorkloadIdentity:
		v.required(p+".tenantId", c.TenantID)
		v.required(p+".clientId", c.ClientID)
		v.required(p+".tokenFile", c.TokenFile)
	}
}

func (v *validator) required(path, s string) {
	if s == "" {
		v.fail(path, "missing")
	}
}

func (v *validator) sslPolicy() {
	var spec tlspolicy.Spec
	if p := v.g.SSLPolicy; p != nil {
		spec = tlspolicy.Spec{PolicyType: p.PolicyType, PolicyName: p.PolicyName,
			MinProtocolVersion: p.MinProtocolVersion, CipherSuites: p.CipherSuites,
			DisabledSSLProtocols: p.DisabledSSLProtocols}
	}
	pol, err := tlspolicy.Resolve(spec)
	var fe *tlspolicy.FieldError
	switch {
	case errors.As(err, &fe):
		v.fail("sslPolicy."+fe.Field, "%s", fe.Msg)
	case err != nil:
		v.fail("sslPolicy", "%v", err)
	}
	v.g.policy = pol
}

func (v *validator) frontendIPs() {
	for i := range v.g.FrontendIPConfigurations {
		f := &v.g.FrontendIPConfigurations[i]
		if f.PrivateIPAddress != "" {
			if _, err := netip.ParseAddr(f.PrivateIPAddress); err != nil {
				v.fail(fmt.Sprintf("frontendIPConfigurations[%d].privateIPAddress", i), "%q is not an IP address", f.PrivateIPAddress)
			}
		}
	}
}

func (v *validator) frontendPorts() {
	seen := map[int]int{}
	for i, p := range v.g.FrontendPorts {
		path := fmt.Sprintf("frontendPorts[%d].port", i)
		v.inRange(path, p.Port, 1, 65535, true)
		if j, dup := seen[p.Port]; dup && p.Port != 0 {
			v.fail(path, "port %d is already frontendPorts[%d]", p.Port, j)
		}
		seen[p.Port] = i
	}
}

func (v *validator) sslCertificates() {
	for i := range v.g.SSLCertificates {
		c := &v.g.SSLCertificates[i]
		path := fmt.Sprintf("sslCertificates[%d]", i)
		switch {
		case c.Data != "" && c.KeyVaultSecretID != "":
			v.fail(path, "give data or keyVaultSecretId, not both")
		case c.Data != "":
			der, err := certs.DecodeBase64(c.Data)
			if err != nil {
				v.fail(path+".data", "not base64 PFX data")
				continue
			}
			m, err := certs.ParsePFX(der, string(c.Password))
			if err != nil {
				v.fail(path+".data", "%v", err)
				continue
			}
			c.material = m
		case c.KeyVaultSecretID != "":
			if c.Password != "" {
				v.fail(path+".password", "only inline data has a password; a vault secret holds the key unencrypted")
			}
			c.secretID = v.secretID(path, c.KeyVaultSecretID)
		default:
			v.fail(path, "missing: give data (base64 PFX) and password, or keyVaultSecretId")
		}
	}
}

func (v *validator) trustedRoots() {
	for i := range v.g.TrustedRootCertificates {
		c := &v.g.TrustedRootCertificates[i]
		path := fmt.Sprintf("trustedRootCertificates[%d]", i)
		switch {
		case c.Data != "" && c.KeyVaultSecretID != "":
			v.fail(path, "give data or keyVaultSecretId, not both")
		case c.Data != "":
			roots, err := certs.ParseRoots(c.Data)
			if err != nil {
				v.fail(path+".data", "%v", err)
				continue
			}
			c.roots = roots
		case c.KeyVaultSecretID != "":
			c.secretID = v.secretID(path, c.KeyVaultSecretID)
		default:
			v.fail(path, "missing: give data (base64 or PEM certificate) or keyVaultSecretId")
		}
	}
}

// secretID parses the keyVaultSecretId of the member at path.
func (v *validator) secretID(path, s string) keyvault.SecretID {
	id, err := keyvault.ParseSecretID(s)
	if err != nil {
		v.fail(path+".keyVaultSecretId", "%v", err)
	}
	return id
}

func (v *validator) listeners() {
	if len(v.g.HTTPListeners) == 0 {
		v.fail("httpListeners", "missing: a gateway needs at least one listener")
	}
	for i := range v.g.HTTPListeners {
		l := &v.g.HTTPListeners[i]
		path := fmt.Sprintf("httpListeners[%d]", i)
		v.oneOf(path+".protocol", &l.Protocol, true, ProtocolHTTP, ProtocolHTTPS)
		v.ref(path+".frontendPort", &l.FrontendPort, collPorts, true)
		v.frontendIPOf(path, l)
		v.hostNames(path, l)

		switch l.Protocol {
		case ProtocolHTTPS:
			v.ref(path+".sslCertificate", &l.SSLCertificate, collCerts, true)
		case ProtocolHTTP:
			if l.SSLCertificate != "" {
				v.fail(path+".sslCertificate", "an Http listener has no certificate; set protocol Https")
			}
			if l.RequireServerNameIndication {
				v.fail(path+".requireServerNameIndication", "only an Https listener has SNI")
			}
		}
	}
}

// frontendIPOf resolves the listener's frontend IP. With none named, the
// only frontendIPConfiguration is meant, or every address when there is
// none.
func (v *validator) frontendIPOf(path string, l *HTTPListener) {
	if l.FrontendIPConfiguration != "" {
		v.ref(path+".frontendIPConfiguration", &l.FrontendIPConfiguration, collFrontendIPs, true)
		return
	}
	switch n := len(v.g.FrontendIPConfigurations); {
	case n == 1:
		l.FrontendIPConfiguration = Ref(v.g.FrontendIPConfigurations[0].Name)
	case n > 1:
		v.fail(path+".frontendIPConfiguration", "missing: there are %d frontendIPConfigurations, name one", n)
	}
}

func (v *validator) hostNames(path string, l *HTTPListener) {
	if l.HostName != "" && len(l.HostNames) > 0 {
		v.fail(path, "give hostName or hostNames, not both")
		return
	}
	if l.HostName != "" {
		if hostmatch.IsWildcard(l.HostName) {
			v.fail(path+".hostName", "%q has a wildcard: use hostNames for wildcard names", l.HostName)
		} else if err := hostmatch.Validate(l.HostName); err != nil {
			v.fail(path+".hostName", "%v", err)
		}
		return
	}
	if len(l.HostNames) > 5 {
		v.fail(path+".hostNames", "%d names: a listener takes at most 5", len(l.HostNames))
	}
	seen := map[string]bool{}
	for j, h := range l.HostNames {
		p := fmt.Sprintf("%s.hostNames[%d]", path, j)
		if err := hostmatch.Validate(h); err != nil {
			v.fail(p, "%v", err)
		}
		if seen[strings.ToLower(h)] {
			v.fail(p, "%q is listed twice", h)
		}
		seen[strings.ToLower(h)] = true
	}
}

var dnsName = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$`)

func (v *validator) pools() {
	for i, p := range v.g.BackendAddressPools {
		for j, a := range p.BackendAddresses {
			path := fmt.Sprintf("backendAddressPools[%d].backendAddresses[%d]", i, j)
			switch {
			case a.IPAddress != "" && a.FQDN != "":
				v.fail(path, "give ipAddress or fqdn, not both")
			case a.IPAddress != "":
				if _, err := netip.ParseAddr(a.IPAddress); err != nil {
					v.fail(path+".ipAddress", "%q is not an IP address", a.IPAddress)
				}
			case a.FQDN != "":
				if !dnsName.MatchString(a.FQDN) || len(a.FQDN) > 253 {
					v.fail(path+".fqdn", "%q is not a DNS name", a.FQDN)
				}
			default:
				v.fail(path, "missing: give ipAddress or fqdn")
			}
		}
	}
}

var cookieName = regexp.MustCompile(`^[!#$%&'*+\-.^_` + "`" + `|~0-9A-Za-z]+$`)

func (v *validator) settings() {
	for i := range v.g.BackendHTTPSettingsCollection {
		s := &v.g.BackendHTTPSettingsCollection[i]
		path := fmt.Sprintf("backendHttpSettingsCollection[%d]", i)
		v.inRange(path+".port", s.Port, 1, 65535, true)
		v.oneOf(path+".protocol", &s.Protocol, true, ProtocolHTTP, ProtocolHTTPS)
		v.inRange(path+".requestTimeout", s.RequestTimeout, 1, 86400, false)
		v.oneOf(path+".cookieBasedAffinity", &s.CookieBasedAffinity, false, AffinityEnabled, AffinityDisabled)
		if s.AffinityCookieName != "" && !cookieName.MatchString(s.AffinityCookieName) {
			v.fail(path+".affinityCookieName", "%q is not a cookie name", s.AffinityCookieName)
		}
		if s.HostName != "" && s.PickHostNameFromBackendAddress {
			v.fail(path, "give hostName or pickHostNameFromBackendAddress, not both")
		}
		if s.HostName != "" && !dnsName.MatchString(s.HostName) {
			v.fail(path+".hostName", "%q is not a host name", s.HostName)
		}
		if d := s.ConnectionDraining; d != nil && d.Enabled {
			v.inRange(path+".connectionDraining.drainTimeoutInSec", d.DrainTimeoutInSec, 1, 3600, true)
		}
		for j := range s.TrustedRootCertificates {
			v.ref(fmt.Sprintf("%s.trustedRootCertificates[%d]", path, j), &s.TrustedRootCertificates[j], collRoots, true)
		}
		if len(s.TrustedRootCertificates) > 0 && s.Protocol == ProtocolHTTP {
			v.fail(path+".trustedRootCertificates", "only an Https backend is verified against trusted roots")
		}
		v.ref(path+".probe", &s.Probe, collProbes, false)
	}
}

var statusRange = regexp.MustCompile(`^([1-5][0-9][0-9])(?:-([1-5][0-9][0-9]))?$`)

func (v *validator) probes() {
	for i := range v.g.Probes {
		p := &v.g.Probes[i]
		path := fmt.Sprintf("probes[%d]", i)
		v.oneOf(path+".protocol", &p.Protocol, true, ProtocolHTTP, ProtocolHTTPS)
		if !strings.HasPrefix(p.Path, "/") {
			v.fail(path+".path", "want a path starting with /, such as /health")
		}
		switch {
		case p.Host != "" && p.PickHostNameFromBackendHTTPSettings:
			v.fail(path, "give host or pickHostNameFromBackendHttpSettings, not both")
		case p.Host == "" && !p.PickHostNameFromBackendHTTPSettings:
			v.fail(path+".host", "missing: give host, or set pickHostNameFromBackendHttpSettings")
		case p.Host != "" && !dnsName.MatchString(p.Host):
			v.fail(path+".host", "%q is not a host name", p.Host)
		}
		v.inRange(path+".port", p.Port, 1, 65535, false)
		v.inRange(path+".interval", p.Interval, 1, 86400, false)
		v.inRange(path+".timeout", p.Timeout, 1, 86400, false)
		v.inRange(path+".unhealthyThreshold", p.UnhealthyThreshold, 1, 20, false)
		if p.Match == nil {
			continue
		}
		for j, sc := range p.Match.StatusCodes {
			m := statusRange.FindStringSubmatch(sc)
			if m == nil || (m[2] != "" && m[2] < m[1]) {
				v.fail(fmt.Sprintf("%s.match.statusCodes[%d]", path, j), "%q is not a status code or a range such as 200-399", sc)
			}
		}
	}
}

func (v *validator) redirects() {
	for i := range v.g.RedirectConfigurations {
		r := &v.g.RedirectConfigurations[i]
		path := fmt.Sprintf("redirectConfigurations[%d]", i)
		v.oneOf(path+".redirectType", &r.RedirectType, true, RedirectPermanent, RedirectFound, RedirectSeeOther, RedirectTemporary)
		switch {
		case r.TargetListener != "" && r.TargetURL != "":
			v.fail(path, "give targetListener or targetUrl, not both")
		case r.TargetURL != "":
			u, err := url.Parse(r.TargetURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.fail(path+".targetUrl", "%q is not an absolute http or https URL", r.TargetURL)
			}
		case r.TargetListener != "":
			if !v.ref(path+".targetListener", &r.TargetListener, collListeners, true) {
				continue
			}
			j, _ := v.index(collListeners, r.TargetListener)
			if hosts := v.g.HTTPListeners[j].Hosts(); len(hosts) > 1 || (len(hosts) == 1 && hostmatch.IsWildcard(hosts[0])) {
				v.fail(path+".targetListener", "listener %q has a wildcard or several host names: a redirect cannot target it", r.TargetListener)
			}
		default:
			v.fail(path, "missing: give targetListener or targetUrl")
		}
	}
}

func (v *validator) pathMaps() {
	for i := range v.g.URLPathMaps {
		m := &v.g.URLPathMaps[i]
		path := fmt.Sprintf("urlPathMaps[%d]", i)
		v.target(path, "default", &m.DefaultBackendAddressPool, &m.DefaultBackendHTTPSettings, &m.DefaultRedirectConfiguration)
		names := map[string]bool{}
		for j := range m.PathRules {
			r := &m.PathRules[j]
			rp := fmt.Sprintf("%s.pathRules[%d]", path, j)
			if r.Name != "" && names[r.Name] {
				v.fail(rp+".name", "%q is already the name of a path rule of this map", r.Name)
			}
			names[r.Name] = true
			if len(r.Paths) == 0 {
				v.fail(rp+".paths", "missing: give at least one path, such as /images/*")
			}
			for k, p := range r.Paths {
				if err := checkPathPattern(p); err != nil {
					v.fail(fmt.Sprintf("%s.paths[%d]", rp, k), "%v", err)
				}
			}
			v.target(rp, "", &r.BackendAddressPool, &r.BackendHTTPSettings, &r.RedirectConfiguration)
		}
	}
}

// checkPathPattern applies Application Gateway's rules for path patterns.
func checkPathPattern(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q must start with /", p)
	case strings.ContainsAny(p, "?#"):
		return fmt.Errorf("%q: a path pattern has no query or fragment", p)
	case strings.Contains(strings.TrimSuffix(p, "*"), "*"):
		return fmt.Errorf("%q: '*' may appear only at the end", p)
	}
	return nil
}

// target checks a backend-or-redirect choice. prefix is "default" in a
// URL path map, where the fields are defaultBackendAddressPool and so on.
func (v *validator) target(path, prefix string, pool, settings, redirect *Ref) {
	field := func(name string) string {
		if prefix == "" {
			return path + "." + name
		}
		return path + "." + prefix + strings.ToUpper(name[:1]) + name[1:]
	}
	hasBackend := *pool != "" || *settings != ""
	switch {
	case hasBackend && *redirect != "":
		v.fail(path, "give a backend (backendAddressPool and backendHttpSettings) or a redirectConfiguration, not both")
	case *redirect != "":
		v.ref(field("redirectConfiguration"), redirect, collRedirects, true)
	case !hasBackend:
		v.fail(path, "missing: give %s and %s, or %s", field("backendAddressPool"), field("backendHttpSettings"), field("redirectConfiguration"))
	default:
		v.ref(field("backendAddressPool"), pool, collPools, true)
		v.ref(field("backendHttpSettings"), settings, collSettings, true)
	}
}

func (v *validator) rules() {
	rules := v.g.RequestRoutingRules
	anyPriority := false
	for _, r := range rules {
		anyPriority = anyPriority || r.Priority != 0
	}
	listenerRule := map[string]int{}
	priorities := map[int]int{}
	for i := range rules {
		r := &rules[i]
		path := fmt.Sprintf("requestRoutingRules[%d]", i)
		v.oneOf(path+".ruleType", &r.RuleType, true, RuleBasic, RulePathBasedRouting)

		// Priorities: all or none, unique, 1 to 20000.
		if anyPriority {
			v.inRange(path+".priority", r.Priority, 1, 20000, true)
			if j, dup := priorities[r.Priority]; dup && r.Priority != 0 {
				v.fail(path+".priority", "%d is already the priority of requestRoutingRules[%d]", r.Priority, j)
			}
			priorities[r.Priority] = i
		}

		// One rule per listener.
		if v.ref(path+".httpListener", &r.HTTPListener, collListeners, true) {
			if j, dup := listenerRule[string(r.HTTPListener)]; dup {
				v.fail(path+".httpListener", "listener %q is already used by requestRoutingRules[%d]", r.HTTPListener, j)
			}
			listenerRule[string(r.HTTPListener)] = i
		}

		switch r.RuleType {
		case RuleBasic:
			if r.URLPathMap != "" {
				v.fail(path+".urlPathMap", "only a PathBasedRouting rule has a URL path map")
			}
			v.target(path, "", &r.BackendAddressPool, &r.BackendHTTPSettings, &r.RedirectConfiguration)
		case RulePathBasedRouting:
			v.ref(path+".urlPathMap", &r.URLPathMap, collPathMaps, true)
			if r.BackendAddressPool != "" || r.BackendHTTPSettings != "" || r.RedirectConfiguration != "" {
				v.fail(path, "a PathBasedRouting rule routes through its urlPathMap: leave out backendAddressPool, backendHttpSettings and redirectConfiguration")
			}
		}
	}
	if anyPriority {
		for i, r := range rules {
			if r.Priority == 0 {
				v.fail(fmt.Sprintf("requestRoutingRules[%d].priority", i), "missing: when one rule has a priority, every rule needs one")
			}
		}
	}
	for i, l := range v.g.HTTPListeners {
		if _, used := listenerRule[l.Name]; !used && l.Name != "" {
			v.fail(fmt.Sprintf("httpListeners[%d]", i), "no requestRoutingRule uses this listener")
		}
	}
}

// listenerClaims checks that listeners sharing an address and port agree
// on the protocol and do not claim the same host name.
func (v *validator) listenerClaims() {
	type claim struct {
		listener int
		protocol string
	}
	byAddr := map[string]map[string]claim{}
	firstOn := map[string]claim{}
	for i := range v.g.HTTPListeners {
		l := &v.g.HTTPListeners[i]
		addr, ok := v.listenAddress(l)
		if !ok {
			continue
		}
		l.address = addr
		claims := byAddr[addr]
		if claims == nil {
			claims = map[string]claim{}
			byAddr[addr] = claims
			firstOn[addr] = claim{listener: i, protocol: l.Protocol}
		}
		path := fmt.Sprintf("httpListeners[%d]", i)
		if c := firstOn[addr]; c.protocol != l.Protocol {
			v.fail(path+".protocol", "%s on %s, where httpListeners[%d] is %s: a port serves one protocol", l.Protocol, addr, c.listener, c.protocol)
		}
		hosts := l.Hosts()
		if len(hosts) == 0 {
			hosts = []string{""}
		}
		for _, h := range hosts {
			key := strings.ToLower(h)
			if c, dup := claims[key]; dup {
				what := fmt.Sprintf("host name %q", h)
				if h == "" {
					what = "no host name (a basic listener)"
				}
				v.fail(path, "claims %s on %s, as httpListeners[%d] does", what, addr, c.listener)
				continue
			}
			claims[key] = claim{listener: i, protocol: l.Protocol}
		}
	}
}

// listenAddress returns the host:port the listener binds.
func (v *validator) listenAddress(l *HTTPListener) (string, bool) {
	pi, ok := v.index(collPorts, l.FrontendPort)
	if !ok {
		return "", false
	}
	ip := ""
	if l.FrontendIPConfiguration != "" {
		fi, ok := v.index(collFrontendIPs, l.FrontendIPConfiguration)
		if !ok {
			return "", false
		}
		ip = v.g.FrontendIPConfigurations[fi].PrivateIPAddress
	}
	return net.JoinHostPort(ip, strconv.Itoa(v.g.FrontendPorts[pi].Port)), true
}

func (v *validator) keygateSettings() {
	g := v.g
	if a := g.Admin.Address; a != "" && a != "off" {
		if _, port, err := net.SplitHostPort(string(a)); err != nil || port == "" {
			v.fail("admin.address", "%q is not host:port (or off)", a)
		}
	}
	v.inRange("shutdownTimeout", g.ShutdownTimeout, 1, 3600, false)
	v.oneOf("tlsSessionResumption", &g.TLSSessionResumption, false, "Enabled", "Disabled")
	v.oneOf("onKeyVaultError", &g.OnKeyVaultError, false, KeepLastGood, DisableListener)
	if d := time.Duration(g.KeyVaultPollInterval); d != 0 && d < MinKeyVaultPollInterval {
		v.fail("keyVaultPollInterval", "%v is shorter than the minimum, %v", d, MinKeyVaultPollInterval)
	}
	if p := g.CertificateCache.Path; p != "" {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			v.fail("certificateCache.path", "%s is not a folder", p)
		}
	}
}
