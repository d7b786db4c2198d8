package vault

import (
	"errors"
	"fmt"
)

// Kinds of failure that callers branch on with errors.Is. The wire layer
// maps each to a status code and a Key Vault error code.
var (
	// ErrNotFound: the vault, object or version does not exist (or is
	// soft-deleted, for operations on live objects).
	ErrNotFound = errors.New("not found")

	// ErrConflict: the operation clashes with the object's state, such as
	// setting a secret whose name is soft-deleted.
	ErrConflict = errors.New("conflict")

	// ErrDisabled: the object exists but is disabled, so its value is not
	// returned.
	ErrDisabled = errors.New("disabled")

	// ErrBadParameter: the request names or carries something invalid.
	ErrBadParameter = errors.New("bad parameter")

	// ErrManaged: the secret belongs to a certificate, and only
	// certificate operations change it.
	ErrManaged = errors.New("managed by a certificate")

	// ErrPurgeProtected: the vault has purge protection on, so neither it
	// nor its deleted objects may be purged before their scheduled purge
	// date.
	ErrPurgeProtected = errors.New("purge protected")

	// ErrDeletedVaultExists: the name belongs to a soft-deleted vault
	// until it is recovered or purged. It is also an ErrConflict.
	ErrDeletedVaultExists = fmt.Errorf("name held by a deleted vault: %w", ErrConflict)
)

// Error is a failure whose message is safe to show the client: it names
// objects and fields, never values. Kind is one of the Err variables above.
type Error struct {
	Kind    error
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the kind, so errors.Is(err, ErrNotFound) works.
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// managedSecret refuses op on the secret of a certificate, as Key Vault
// does.
func managedSecret(op string) error {
	return errorf(ErrManaged, "Operation %q is not allowed as this object's lifetime is managed by Key Vault: it is a certificate's secret; use the certificate operations", op)
}

func badParameter(format string, args ...any) error {
	return errorf(ErrBadParameter, format, args...)
}
