package server

import (
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/keygate/keygate/internal/vault"
)

// Several vaults are served on one listener, each at a host name of its
// own, as Key Vault serves NAME.vault.azure.net:
//
//   - The default vault is at the server's bare address: its --hostname
//     (or its public URL's host), localhost, and any IP address.
//   - Vault NAME is at NAME.DOMAIN, where DOMAIN is the resource host the
//     bearer challenge names: the parent domain of the server's host name
//     (vault team of a server kv.vault.example.internal is
//     team.vault.example.internal), or localhost when the server is reached
//     by IP address (team.localhost, which clients reach by setting the
//     Host, or a hosts-file entry).
//
// With --hostname, NAME.DOMAIN is a subdomain of the challenge's resource,
// so the Go SDK keeps challenge verification on. The server certificate
// the local CA issues covers *.DOMAIN.

// publicHost is the host of the URL clients reach the default vault by,
// lower-cased, once Open has set it.
func (s *Server) publicHost() string {
	u, err := url.Parse(s.vaultURL)
	if err != nil {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
}

// vaultDomain is DOMAIN above.
func (s *Server) vaultDomain() string {
	host := s.publicHost()
	if host == "" || host == "localhost" || net.ParseIP(host) != nil {
		return "localhost"
	}
	return resourceHost(host)
}

// reservedVaultNames are the names no vault may take: the first label of
// the server's own host name when that is NAME.DOMAIN, which addresses the
// default vault.
func (s *Server) reservedVaultNames() []string {
	if label, rest, ok := strings.Cut(s.publicHost(), "."); ok && rest == s.vaultDomain() {
		return []string{label}
	}
	return nil
}

// vaultForHost maps a request's Host header to the vault it addresses.
// Hosts that are not NAME.DOMAIN address the default vault, so a server
// reached by any other name (a load balancer's, say) serves its default
// vault there.
func (s *Server) vaultForHost(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if _, err := netip.ParseAddr(host); err == nil {
		return vault.DefaultVault
	}
	label, rest, ok := strings.Cut(host, ".")
	if !ok || rest != s.vaultDomain() {
		return vault.DefaultVault
	}
	for _, r := range s.reservedVaultNames() {
		if label == r {
			return vault.DefaultVault
		}
	}
	return label
}

// VaultURL is the URL clients reach the vault called name at, known once
// Open has returned: the server's URL for the default vault, else
// https://NAME.DOMAIN with the port of the server's URL.
func (s *Server) VaultURL(name string) string {
	if name == vault.DefaultVault {
		return s.vaultURL
	}
	u, err := url.Parse(s.vaultURL)
	if err != nil || u.Port() == "" {
		return "https://" + name + "." + s.vaultDomain()
	}
	return "https://" + net.JoinHostPort(name+"."+s.vaultDomain(), u.Port())
}
