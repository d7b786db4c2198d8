package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// apiError is an error as Key Vault puts it on the wire. Message is shown
// to the client, so it never holds secret material.
type apiError struct {
	Status  int
	Code    string
	Inner   string
	Message string

	// RetryAfter, in seconds, is sent as Retry-After when not zero.
	RetryAfter int
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// throttled is Key Vault's answer to a client over a limit: 429 Throttled,
// which the SDKs retry after Retry-After.
func throttled(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusTooManyRequests, Code: "Throttled", Message: sprintf(format, args...), RetryAfter: streamRetryAfter}
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "BadParameter", Message: sprintf(format, args...)}
}

// errorBody is Key Vault's error envelope.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code       string       `json:"code"`
	Message    string       `json:"message"`
	InnerError *errorDetail `json:"innererror,omitempty"`
}

// toAPIError maps a domain or store error to its wire form. Errors it does
// not know become a 500 whose message says nothing of the cause; the cause
// is logged by the caller.
func toAPIError(err error, notFoundCode string) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var ve *vault.Error
	if errors.As(err, &ve) {
		switch {
		case errors.Is(err, vault.ErrNotFound):
			return &apiError{Status: http.StatusNotFound, Code: notFoundCode, Message: ve.Message}
		case errors.Is(err, vault.ErrConflict):
			return &apiError{Status: http.StatusConflict, Code: "Conflict", Message: ve.Message}
		case errors.Is(err, vault.ErrDisabled):
			return &apiError{Status: http.StatusForbidden, Code: "Forbidden", Inner: "SecretDisabled", Message: "Operation get is not allowed on a disabled secret."}
		case errors.Is(err, vault.ErrPurgeProtected):
			return &apiError{Status: http.StatusForbidden, Code: "Forbidden", Message: ve.Message}
		case errors.Is(err, vault.ErrManaged):
			return &apiError{Status: http.StatusForbidden, Code: "Forbidden", Inner: "SecretManagedByKeyVault", Message: ve.Message}
		case errors.Is(err, vault.ErrBadParameter):
			return &apiError{Status: http.StatusBadRequest, Code: "BadParameter", Message: ve.Message}
		}
	}
	if errors.Is(err, store.ErrUnavailable) {
		return &apiError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "The vault's storage is unavailable; retry later."}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: "InternalServerError", Message: "The vault failed to process the request."}
}

func writeError(w http.ResponseWriter, e *apiError) {
	body := errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}}
	if e.Inner != "" {
		body.Error.InnerError = &errorDetail{Code: e.Inner}
	}
	w.Header().Set("x-ms-error-code", e.Code)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, body)
}
