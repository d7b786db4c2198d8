package authz

import (
	"errors"
	"fmt"
	"strings"
)

// Object kinds, as Key Vault names them in the permissions of an access
// policy.
const (
	KindKeys         = "keys"
	KindSecrets      = "secrets"
	KindCertificates = "certificates"
)

// PermissionAll in any list grants every permission of that kind.
const PermissionAll = "all"

// Secret permissions, as Key Vault names them.
const (
	SecretGet     = "get"
	SecretList    = "list"
	SecretSet     = "set"
	SecretDelete  = "delete"
	SecretRecover = "recover"
	SecretBackup  = "backup"
	SecretRestore = "restore"
	SecretPurge   = "purge"
)

// Certificate permissions, as Key Vault names them.
const (
	CertificateGet            = "get"
	CertificateList           = "list"
	CertificateUpdate         = "update"
	CertificateCreate         = "create"
	CertificateImport         = "import"
	CertificateDelete         = "delete"
	CertificateRecover        = "recover"
	CertificateBackup         = "backup"
	CertificateRestore        = "restore"
	CertificatePurge          = "purge"
	CertificateManageContacts = "managecontacts"
	CertificateManageIssuers  = "manageissuers"
	CertificateGetIssuers     = "getissuers"
	CertificateListIssuers    = "listissuers"
	CertificateSetIssuers     = "setissuers"
	CertificateDeleteIssuers  = "deleteissuers"
)

// SecretPermissions returns the valid names of secret permissions,
// PermissionAll included. The caller may modify the slice.
func SecretPermissions() []string {
	return []string{
		SecretGet, SecretList, SecretSet, SecretDelete, SecretRecover,
		SecretBackup, SecretRestore, SecretPurge, PermissionAll,
	}
}

// CertificatePermissions returns the valid names of certificate
// permissions, PermissionAll included. The caller may modify the slice.
func CertificatePermissions() []string {
	return []string{
		CertificateGet, CertificateList, CertificateUpdate, CertificateCreate,
		CertificateImport, CertificateDelete, CertificateRecover,
		CertificateBackup, CertificateRestore, CertificatePurge,
		CertificateManageContacts, CertificateManageIssuers,
		CertificateGetIssuers, CertificateListIssuers,
		CertificateSetIssuers, CertificateDeleteIssuers, PermissionAll,
	}
}

// KeyPermissions returns the valid names of key permissions, PermissionAll
// included. keygate serves only the public half of certificate keys, but
// policies written for Azure carry key permissions, so they are accepted.
// The caller may modify the slice.
func KeyPermissions() []string {
	return []string{
		"get", "list", "update", "create", "import", "delete", "recover",
		"backup", "restore", "purge", "encrypt", "decrypt", "wrapKey",
		"unwrapKey", "sign", "verify", "release", "rotate",
		"getrotationpolicy", "setrotationpolicy", PermissionAll,
	}
}

// AccessPolicy grants one principal permissions on a vault's objects. It
// has the shape of an entry of an Azure vault's accessPolicies.
type AccessPolicy struct {
	TenantID    string      `json:"tenantId"`
	ObjectID    string      `json:"objectId"`
	Permissions Permissions `json:"permissions"`
}

// Permissions lists what an AccessPolicy grants, per kind of object.
// Names compare case-insensitively, as Azure's do.
type Permissions struct {
	Keys         []string `json:"keys,omitempty"`
	Secrets      []string `json:"secrets,omitempty"`
	Certificates []string `json:"certificates,omitempty"`
}

// Validate checks that the tenant and object ids are set and that every
// permission is a name Key Vault knows for its kind, in any case. The
// error names the first bad field, for example
// `permissions.secrets[2]: unknown permission "gett"`.
func (p AccessPolicy) Validate() error {
	if strings.TrimSpace(p.TenantID) == "" {
		return errors.New("tenantId: must not be empty")
	}
	if strings.TrimSpace(p.ObjectID) == "" {
		return errors.New("objectId: must not be empty")
	}
	lists := []struct {
		field string
		names []string
		valid []string
	}{
		{"permissions.keys", p.Permissions.Keys, KeyPermissions()},
		{"permissions.secrets", p.Permissions.Secrets, SecretPermissions()},
		{"permissions.certificates", p.Permissions.Certificates, CertificatePermissions()},
	}
	for _, l := range lists {
		if err := validateNames(l.field, l.names, l.valid); err != nil {
			return err
		}
	}
	return nil
}

// validateNames checks that each of names is one of valid, ignoring case.
func validateNames(field string, names, valid []string) error {
	for i, n := range names {
		if !containsFold(valid, n) {
			return fmt.Errorf("%s[%d]: unknown permission %q", field, i, n)
		}
	}
	return nil
}

// Allows reports whether any of policies grants perm on objects of kind
// (KindSecrets, KindCertificates or KindKeys) to p, matching the policy's
// tenant and object id to p's. An unknown kind is never allowed. Ids and
// permission names compare case-insensitively. Allows does not allocate.
func Allows(policies []AccessPolicy, p Principal, kind, perm string) bool {
	if p.TenantID == "" || p.ObjectID == "" || perm == "" {
		return false
	}
	for i := range policies {
		pol := &policies[i]
		if !strings.EqualFold(pol.TenantID, p.TenantID) || !strings.EqualFold(pol.ObjectID, p.ObjectID) {
			continue
		}
		granted := pol.Permissions.of(kind)
		if containsFold(granted, perm) || containsFold(granted, PermissionAll) {
			return true
		}
		if kind == KindCertificates && isIssuerPermission(perm) && containsFold(granted, CertificateManageIssuers) {
			return true
		}
	}
	return false
}

// isIssuerPermission reports whether perm is one of the issuer
// permissions that manageissuers grants as a whole, as in Key Vault.
func isIssuerPermission(perm string) bool {
	for _, p := range []string{CertificateGetIssuers, CertificateListIssuers, CertificateSetIssuers, CertificateDeleteIssuers} {
		if strings.EqualFold(p, perm) {
			return true
		}
	}
	return false
}

// of returns the permissions granted on kind, or nil for an unknown kind.
func (ps *Permissions) of(kind string) []string {
	switch kind {
	case KindSecrets:
		return ps.Secrets
	case KindCertificates:
		return ps.Certificates
	case KindKeys:
		return ps.Keys
	}
	return nil
}

// containsFold reports whether list holds s, ignoring case.
func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
