package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Code names a certificate's condition: why the gateway cannot refresh
// it, or cannot use what it read. The codes of vault errors are
// Application Gateway's, so that runbooks written for Azure apply; the
// others are keygate's own.
type Code string

// Conditions.
const (
	// OK: the last attempt read the certificate and it is in use.
	OK Code = "OK"

	// Application Gateway's codes: the vault refused the read.
	UserAssignedIdentityDoesNotHaveGetPermissionOnKeyVault Code = "UserAssignedIdentityDoesNotHaveGetPermissionOnKeyVault"
	SecretDisabled                                         Code = "SecretDisabled"
	SecretDeletedFromKeyVault                              Code = "SecretDeletedFromKeyVault"
	KeyVaultHasRestrictedAccess                            Code = "KeyVaultHasRestrictedAccess"
	KeyVaultSoftDeleted                                    Code = "KeyVaultSoftDeleted"
	UserAssignedManagedIdentityNotFound                    Code = "UserAssignedManagedIdentityNotFound"

	// IdentityAuthenticationFailed: the credential was refused for a
	// reason other than an unassigned identity (a wrong client secret, a
	// wrong agent header, a token the vault does not accept).
	IdentityAuthenticationFailed Code = "IdentityAuthenticationFailed"

	// KeyVaultUnreachable: the vault did not answer, timed out, or
	// answered 5xx or 429; IdentityUnavailable: the same of the identity
	// agent or authority; KeyVaultRequestFailed: any other refusal.
	KeyVaultUnreachable   Code = "KeyVaultUnreachable"
	IdentityUnavailable   Code = "IdentityUnavailable"
	KeyVaultRequestFailed Code = "KeyVaultRequestFailed"

	// What was read cannot be served.
	CertificateUnusable         Code = "CertificateUnusable"
	CertificateExpired          Code = "CertificateExpired"
	CertificateNotYetValid      Code = "CertificateNotYetValid"
	CertificateHostNameMismatch Code = "CertificateHostNameMismatch"
)

// Codes lists every condition, for metrics and documentation.
var Codes = []Code{
	OK,
	UserAssignedIdentityDoesNotHaveGetPermissionOnKeyVault, SecretDisabled,
	SecretDeletedFromKeyVault, KeyVaultHasRestrictedAccess, KeyVaultSoftDeleted,
	UserAssignedManagedIdentityNotFound, IdentityAuthenticationFailed,
	KeyVaultUnreachable, IdentityUnavailable, KeyVaultRequestFailed,
	CertificateUnusable, CertificateExpired, CertificateNotYetValid, CertificateHostNameMismatch,
}

// Access reports whether the code says the vault (or the identity
// authority) refused access: the errors that onKeyVaultError acts on.
// Such a condition does not clear by waiting; someone must act.
func (c Code) Access() bool {
	switch c {
	case UserAssignedIdentityDoesNotHaveGetPermissionOnKeyVault, SecretDisabled,
		SecretDeletedFromKeyVault, KeyVaultHasRestrictedAccess, KeyVaultSoftDeleted,
		UserAssignedManagedIdentityNotFound, IdentityAuthenticationFailed:
		return true
	}
	return false
}

// Transient reports whether the code is one that usually clears by
// itself: the vault or the identity agent could not be reached.
func (c Code) Transient() bool {
	return c == KeyVaultUnreachable || c == IdentityUnavailable
}

// Error is an error with the condition it puts a certificate in. Its
// message is safe to show: it never holds secret material.
type Error struct {
	Code Code
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// CodeOf returns the condition an error puts a certificate in: the code
// of an *Error in its chain, else CertificateUnusable for a decoding
// error, else KeyVaultRequestFailed.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	if errors.Is(err, ErrNoKey) || errors.Is(err, ErrKeyMismatch) {
		return CertificateUnusable
	}
	return KeyVaultRequestFailed
}

// Check reports whether a listener certificate can be served at now on
// listeners with the given host names: it must be valid at now, and
// cover every exact host name and every "*.domain" pattern (checked with
// a name one label under domain). Other wildcard patterns are not
// checked: what they match cannot be told from one name. Roots are not
// checked.
func Check(m *Material, now time.Time, hosts []string) error {
	leaf := m.Leaf()
	if m.KeyPair == nil || leaf == nil {
		return nil
	}
	switch {
	case now.Before(leaf.NotBefore):
		return Errorf(CertificateNotYetValid, "serial %s is not valid before %s",
			m.Serial(), leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return Errorf(CertificateExpired, "serial %s expired at %s",
			m.Serial(), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	for _, h := range hosts {
		if !covers(leaf, h) {
			return Errorf(CertificateHostNameMismatch, "serial %s (names %s) does not cover host name %s",
				m.Serial(), strings.Join(leafNames(leaf), ", "), h)
		}
	}
	return nil
}

// covers reports whether leaf serves the listener host pattern h.
func covers(leaf *x509.Certificate, h string) bool {
	probe := h
	if rest, ok := strings.CutPrefix(h, "*."); ok && !strings.ContainsAny(rest, "*?") {
		probe = "keygate-probe." + rest
	} else if strings.ContainsAny(h, "*?") {
		return true
	}
	return leaf.VerifyHostname(probe) == nil
}

func leafNames(leaf *x509.Certificate) []string {
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = append(names, "CN="+leaf.Subject.CommonName)
	}
	return names
}
