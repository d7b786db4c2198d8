package httpapi

import (
	"errors"
	"net/http"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/vault"
)

// admit finds the vault a request addresses and applies its network
// rules, before the request is authenticated or read, as Key Vault's
// firewall does. It answers the request itself when it refuses it.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, c *call) bool {
	v, err := h.vaults.Vault(r.Context(), c.vault)
	if err != nil {
		ae := toAPIError(err, "VaultNotFound")
		if errors.Is(err, vault.ErrNotFound) {
			ae.Message = sprintf("No vault is served at host %q.", truncate(r.Host, 100))
		}
		h.fail(w, r, c, ae, "VaultNotFound")
		return false
	}
	c.props = v

	switch authz.CheckNetwork(v.NetworkACLs, c.addr) {
	case authz.NetworkDenied:
		h.firewallDenied(w, r, c)
		return false
	case authz.NetworkDeniedUnlessService:
		// Decided once the token says who is calling.
		c.serviceOnly = true
	}
	return true
}

// firewallDenied answers a caller the vault's network rules refuse: 403
// Forbidden with the inner code ForbiddenByFirewall and the caller's
// address, as Key Vault words its firewall's refusals.
func (h *Handler) firewallDenied(w http.ResponseWriter, r *http.Request, c *call) {
	addr := "unknown"
	if c.addr.IsValid() {
		addr = c.addr.String()
	}
	msg := "Client address is not authorized and caller is not a trusted service.\nClient address: " + addr
	if c.principal.ObjectID != "" {
		msg += "\nCaller: appid=" + c.principal.ClientID + ";oid=" + c.principal.ObjectID
	}
	msg += "\nVault: " + c.vault
	h.fail(w, r, c, &apiError{
		Status: http.StatusForbidden, Code: "Forbidden", Inner: "ForbiddenByFirewall", Message: msg,
	}, "")
}
