package authz

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Network rule actions and bypass values, spelled as on Azure's vault
// resource (networkAcls.defaultAction, networkAcls.bypass).
const (
	ActionAllow = "Allow"
	ActionDeny  = "Deny"

	// BypassAzureServices lets keygate's own services through a vault's
	// firewall: callers whose token carries RoleService. Azure's value
	// names Microsoft's trusted services; keygate's are its own.
	BypassAzureServices = "AzureServices"
	BypassNone          = "None"
)

// RoleService marks a principal as one of keygate's own services (a
// gateway fleet's identity, say), which a vault's networkAcls.bypass of
// AzureServices lets through the firewall.
const RoleService = "keygate.service"

// maxIPRules bounds a vault's IP rules; Azure allows 1000.
const maxIPRules = 1000

// NetworkACLs are a vault's network rules, shaped as Azure's networkAcls.
// The zero value allows every address.
type NetworkACLs struct {
	// DefaultAction applies to addresses no IP rule matches: Allow or
	// Deny. Empty means Allow.
	DefaultAction string `json:"defaultAction"`

	// Bypass is AzureServices or None. With AzureServices, a caller the
	// rules deny is let through if it authenticates as one of keygate's
	// own services (RoleService). Empty means None.
	Bypass string `json:"bypass"`

	// IPRules are the addresses and ranges allowed when DefaultAction is
	// Deny: IPv4 or IPv6, single addresses or CIDR prefixes.
	IPRules []IPRule `json:"ipRules"`
}

// IPRule is one allowed address or CIDR range, as Azure's ipRules entry.
type IPRule struct {
	Value string `json:"value"`
}

// Normalize checks a and returns it in canonical form: actions spelled as
// above whatever the case they came in, each rule as a CIDR prefix with
// its host bits cleared (a single address as /32 or /128), duplicates
// dropped. The error names the first bad field, as
// `networkAcls.ipRules[2].value: "10.0.0.300" is not an IP address or CIDR range`.
func (a NetworkACLs) Normalize() (NetworkACLs, error) {
	out := NetworkACLs{IPRules: []IPRule{}}
	var err error
	if out.DefaultAction, err = oneOf("networkAcls.defaultAction", a.DefaultAction, ActionAllow, ActionAllow, ActionDeny); err != nil {
		return NetworkACLs{}, err
	}
	if out.Bypass, err = oneOf("networkAcls.bypass", a.Bypass, BypassNone, BypassAzureServices, BypassNone); err != nil {
		return NetworkACLs{}, err
	}
	if len(a.IPRules) > maxIPRules {
		return NetworkACLs{}, fmt.Errorf("networkAcls.ipRules: more than %d rules", maxIPRules)
	}
	for i, r := range a.IPRules {
		p, err := ParseIPRule(r.Value)
		if err != nil {
			return NetworkACLs{}, fmt.Errorf("networkAcls.ipRules[%d].value: %w", i, err)
		}
		if !out.hasRule(p) {
			out.IPRules = append(out.IPRules, IPRule{Value: p.String()})
		}
	}
	return out, nil
}

// oneOf returns the spelling in valid that v names, ignoring case, or def
// when v is empty.
func oneOf(field, v, def string, valid ...string) (string, error) {
	if v == "" {
		return def, nil
	}
	for _, s := range valid {
		if strings.EqualFold(v, s) {
			return s, nil
		}
	}
	return "", fmt.Errorf("%s: %q is not one of %s", field, truncate(v, 40), strings.Join(valid, ", "))
}

// hasRule reports whether a already lists the prefix p.
func (a *NetworkACLs) hasRule(p netip.Prefix) bool {
	for _, r := range a.IPRules {
		if q, err := netip.ParsePrefix(r.Value); err == nil && q == p {
			return true
		}
	}
	return false
}

// ParseIPRule parses an IP rule's value: an IPv4 or IPv6 address, or a
// CIDR range. It returns the range with its host bits cleared; an address
// is a range of one. IPv4-mapped IPv6 addresses are taken as IPv4.
func ParseIPRule(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Prefix{}, errors.New("must not be empty")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR range", truncate(s, 60))
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR range", truncate(s, 60))
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Verdict is what a vault's network rules say about a caller's address.
type Verdict int

const (
	// NetworkAllowed: the address may proceed to authentication.
	NetworkAllowed Verdict = iota

	// NetworkDeniedUnlessService: the rules deny the address, but the
	// vault lets keygate's own services bypass them; the caller must
	// authenticate as one (RoleService) to proceed.
	NetworkDeniedUnlessService

	// NetworkDenied: the address is refused before authentication.
	NetworkDenied
)

// CheckNetwork applies a's rules to the caller's address. An invalid
// address (the caller's could not be read) matches no rule. Rules that do
// not parse match nothing; Normalize keeps them out of stored vaults.
func CheckNetwork(a NetworkACLs, addr netip.Addr) Verdict {
	if !strings.EqualFold(a.DefaultAction, ActionDeny) {
		return NetworkAllowed
	}
	addr = addr.Unmap()
	if addr.IsValid() {
		for _, r := range a.IPRules {
			if p, err := ParseIPRule(r.Value); err == nil && p.Contains(addr) {
				return NetworkAllowed
			}
		}
	}
	if strings.EqualFold(a.Bypass, BypassAzureServices) {
		return NetworkDeniedUnlessService
	}
	return NetworkDenied
}

// PeerAddr returns the IP address of a request's peer from its
// RemoteAddr ("IP:port"), without zone and with IPv4-mapped IPv6
// addresses as IPv4. It returns the zero Addr when remoteAddr holds none.
//
// Forwarding headers (X-Forwarded-For) are not read: a caller sets them to
// whatever it likes, and network rules must see the connection's address.
func PeerAddr(remoteAddr string) netip.Addr {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		a, err := netip.ParseAddr(remoteAddr)
		if err != nil {
			return netip.Addr{}
		}
		return a.WithZone("").Unmap()
	}
	return ap.Addr().WithZone("").Unmap()
}

// truncate shortens s for a message.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
