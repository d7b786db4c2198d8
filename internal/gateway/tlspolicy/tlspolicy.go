// Package tlspolicy maps Application Gateway's TLS policies (the
// predefined AppGwSslPolicy names, Custom and CustomV2) to what crypto/tls
// can be told: a range of protocol versions and a list of TLS 1.0 to 1.2
// cipher suites.
//
// Go's crypto/tls lacks some suites the Azure policies name: every DHE
// suite (Application Gateway v2 does not offer those either), the
// AES_256_CBC_SHA384 suites and TLS_RSA_WITH_AES_256_CBC_SHA256. A
// predefined policy is served without them, and Policy.Omitted lists what
// was left out; a custom policy that names one is refused, because the
// operator asked for it by name. TLS 1.3 suites cannot be chosen in Go:
// TLS_AES_128_GCM_SHA256 and TLS_AES_256_GCM_SHA384 (which Azure makes
// mandatory) are always on, and so is TLS_CHACHA20_POLY1305_SHA256. Go
// also chooses the order of suites itself, by what the hardware does
// fast, so the order of a custom list does not set a preference.
package tlspolicy

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
)

// Policy types and the default policy.
const (
	TypePredefined = "Predefined"
	TypeCustom     = "Custom"
	TypeCustomV2   = "CustomV2"

	DefaultName = "AppGwSslPolicy20220101"
)

// Spec is an sslPolicy as written in a configuration.
type Spec struct {
	PolicyType           string
	PolicyName           string
	MinProtocolVersion   string
	CipherSuites         []string
	DisabledSSLProtocols []string
}

// Policy is a resolved TLS policy.
type Policy struct {
	// Name is the predefined policy's name, or Custom or CustomV2.
	Name string

	// MinVersion and MaxVersion bound the protocol versions offered.
	MinVersion, MaxVersion uint16

	// CipherSuites are the TLS 1.0 to 1.2 suites offered.
	CipherSuites []uint16

	// Omitted names the suites of a predefined policy that Go's
	// crypto/tls does not implement, and so are not offered.
	Omitted []string
}

// Apply sets c's versions and suites to p's.
func (p Policy) Apply(c *tls.Config) {
	c.MinVersion = p.MinVersion
	c.MaxVersion = p.MaxVersion
	c.CipherSuites = slices.Clone(p.CipherSuites)
}

// FieldError is an error in one field of a Spec, named as in the file
// (e.g. "cipherSuites[2]").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Resolve checks s and returns the policy it names. Errors are
// *FieldError.
func Resolve(s Spec) (Policy, error) {
	typ := s.PolicyType
	if typ == "" && s.PolicyName == "" && s.MinProtocolVersion == "" && len(s.CipherSuites) == 0 {
		typ, s.PolicyName = TypePredefined, DefaultName
	}
	if typ == "" && s.PolicyName != "" {
		typ = TypePredefined
	}

	var (
		p   Policy
		err error
	)
	switch typ {
	case TypePredefined:
		p, err = predefinedPolicy(s)
	case TypeCustom, TypeCustomV2:
		p, err = customPolicy(typ, s)
	case "":
		return Policy{}, fieldErr("policyType", "missing: give Predefined (with policyName), Custom or CustomV2")
	default:
		return Policy{}, fieldErr("policyType", "%q is not one of Predefined, Custom, CustomV2", typ)
	}
	if err != nil {
		return Policy{}, err
	}
	return disableProtocols(p, s.DisabledSSLProtocols)
}

func predefinedPolicy(s Spec) (Policy, error) {
	def, ok := predefined[s.PolicyName]
	if !ok {
		return Policy{}, fieldErr("policyName", "%q is not a predefined policy; known: %s",
			s.PolicyName, strings.Join(predefinedNames(), ", "))
	}
	if s.MinProtocolVersion != "" {
		return Policy{}, fieldErr("minProtocolVersion", "set by the predefined policy; use policyType Custom or CustomV2 to choose it")
	}
	if len(s.CipherSuites) > 0 {
		return Policy{}, fieldErr("cipherSuites", "set by the predefined policy; use policyType Custom or CustomV2 to choose them")
	}
	p := Policy{Name: s.PolicyName, MinVersion: def.min, MaxVersion: def.max}
	for _, name := range def.suites {
		if id, ok := goSuites[name]; ok {
			p.CipherSuites = append(p.CipherSuites, id)
		} else if !tls13Suites[name] {
			p.Omitted = append(p.Omitted, name)
		}
	}
	return p, nil
}

func customPolicy(typ string, s Spec) (Policy, error) {
	if s.PolicyName != "" {
		return Policy{}, fieldErr("policyName", "only a Predefined policy has a name")
	}
	p := Policy{Name: typ, MaxVersion: tls.VersionTLS12}
	if typ == TypeCustomV2 {
		p.MaxVersion = tls.VersionTLS13
	}

	// The minimum version.
	if s.MinProtocolVersion == "" {
		return Policy{}, fieldErr("minProtocolVersion", "missing: give one of %s", strings.Join(versionNames, ", "))
	}
	minV, ok := versions[s.MinProtocolVersion]
	if !ok {
		return Policy{}, fieldErr("minProtocolVersion", "%q is not one of %s", s.MinProtocolVersion, strings.Join(versionNames, ", "))
	}
	if minV > p.MaxVersion {
		return Policy{}, fieldErr("minProtocolVersion", "TLSv1_3 needs policyType CustomV2")
	}
	p.MinVersion = minV

	// The suites, each one Go can offer.
	for i, name := range s.CipherSuites {
		field := fmt.Sprintf("cipherSuites[%d]", i)
		if tls13Suites[name] {
			if typ != TypeCustomV2 {
				return Policy{}, fieldErr(field, "%s is a TLS 1.3 suite, available only with policyType CustomV2", name)
			}
			continue
		}
		id, err := suiteID(name)
		if err != nil {
			return Policy{}, fieldErr(field, "%v", err)
		}
		if slices.Contains(p.CipherSuites, id) {
			return Policy{}, fieldErr(field, "%s is listed twice", name)
		}
		p.CipherSuites = append(p.CipherSuites, id)
	}
	if len(p.CipherSuites) == 0 && p.MinVersion < tls.VersionTLS13 {
		return Policy{}, fieldErr("cipherSuites", "no TLS 1.0 to 1.2 cipher suite given: no client below TLS 1.3 could connect")
	}
	return p, nil
}

// suiteID returns the crypto/tls ID of an Azure suite name, or an error
// that says why it cannot be offered.
func suiteID(name string) (uint16, error) {
	if id, ok := goSuites[name]; ok && azureSuites[name] {
		return id, nil
	}
	if !azureSuites[name] {
		return 0, fmt.Errorf("%q is not a cipher suite Application Gateway offers", name)
	}
	if strings.HasPrefix(name, "TLS_DHE_") {
		return 0, fmt.Errorf("%s cannot be offered: Go's crypto/tls has no DHE key exchange", name)
	}
	return 0, fmt.Errorf("%s cannot be offered: Go's crypto/tls does not implement it", name)
}

// disableProtocols narrows p by the legacy disabledSslProtocols list.
// crypto/tls offers a contiguous range of versions, so a gap is refused.
func disableProtocols(p Policy, disabled []string) (Policy, error) {
	off := map[uint16]bool{}
	for i, name := range disabled {
		v, ok := versions[name]
		if !ok {
			return Policy{}, fieldErr(fmt.Sprintf("disabledSslProtocols[%d]", i), "%q is not one of %s", name, strings.Join(versionNames, ", "))
		}
		off[v] = true
	}
	for p.MinVersion <= p.MaxVersion && off[p.MinVersion] {
		p.MinVersion++
	}
	for p.MaxVersion >= p.MinVersion && off[p.MaxVersion] {
		p.MaxVersion--
	}
	if p.MinVersion > p.MaxVersion {
		return Policy{}, fieldErr("disabledSslProtocols", "disables every protocol version the policy offers")
	}
	for v := p.MinVersion; v <= p.MaxVersion; v++ {
		if off[v] {
			return Policy{}, fieldErr("disabledSslProtocols", "%s is disabled between two enabled versions; Go's crypto/tls offers a contiguous range", VersionName(v))
		}
	}
	return p, nil
}

// VersionName returns the Azure name of a TLS version (TLSv1_2).
func VersionName(v uint16) string {
	for name, id := range versions {
		if id == v {
			return name
		}
	}
	return fmt.Sprintf("0x%04x", v)
}

var (
	versions = map[string]uint16{
		"TLSv1_0": tls.VersionTLS10,
		"TLSv1_1": tls.VersionTLS11,
		"TLSv1_2": tls.VersionTLS12,
		"TLSv1_3": tls.VersionTLS13,
	}
	versionNames = []string{"TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3"}

	// goSuites are the TLS 1.0 to 1.2 suites crypto/tls implements, by
	// name, the insecure ones included: a policy that names them gets them.
	goSuites = func() map[string]uint16 {
		m := map[string]uint16{}
		for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
			if !slices.Contains(s.SupportedVersions, tls.VersionTLS13) {
				m[s.Name] = s.ID
			}
		}
		return m
	}()

	tls13Suites = map[string]bool{"TLS_AES_128_GCM_SHA256": true, "TLS_AES_256_GCM_SHA384": true}
)
