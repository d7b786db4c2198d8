package identity

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/keygate/keygate/internal/audit"
)

// oauthError is a refusal of the token endpoint: an OAuth2 error (RFC 6749
// section 5.2) with the status and the number Entra uses for the same
// failure, so that people and tools that know Entra's AADSTS codes read
// keygate's the same way. Its message is safe to show to the client: it
// never holds a secret.
type oauthError struct {
	status    int
	code      string // OAuth2 error code
	entraCode int    // Entra's AADSTS number; 0 when Entra has none
	message   string
}

// Refusals with fixed messages. The messages are keygate's own words.
var (
	errUnsupportedGrant = &oauthError{http.StatusBadRequest, "unsupported_grant_type", 70003,
		"The grant type is not supported; this authority serves client_credentials only."}
	errNoClientSecret = &oauthError{http.StatusUnauthorized, "invalid_client", 7000218,
		"The request body must contain the parameter 'client_secret'."}
	errBadSecret = &oauthError{http.StatusUnauthorized, "invalid_client", 7000215,
		"Invalid client secret provided."}
	errInvalidScope = &oauthError{http.StatusBadRequest, "invalid_scope", 70011,
		"The provided value for the input parameter 'scope' is not valid: it must name one resource this authority issues tokens for, as RESOURCE/.default."}
	errUnavailable = &oauthError{http.StatusServiceUnavailable, "temporarily_unavailable", 0,
		"The authority cannot reach its store; try again."}
	errServer = &oauthError{http.StatusInternalServerError, "server_error", 0,
		"The authority failed to issue a token."}
)

// missingParameter is the refusal of a request that lacks name.
func missingParameter(name string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_request", 900144,
		"The request body must contain the parameter '" + name + "'."}
}

// invalidRequest is the refusal of a malformed request.
func invalidRequest(message string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_request", 9002313, message}
}

// unknownClient is the refusal of a client id that names no principal.
func unknownClient(clientID string) *oauthError {
	return &oauthError{http.StatusUnauthorized, "invalid_client", 700016,
		"Application with identifier " + quoteParam(clientID) + " was not found in the directory."}
}

// quoteParam quotes a value taken from the request for a message, cut to
// a length that keeps the message readable.
func quoteParam(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return strconv.Quote(s)
}

// description is the error_description: the message prefixed with the
// AADSTS code and followed by the ids, as Entra writes it.
func (e *oauthError) description(traceID, correlationID, timestamp string) string {
	msg := e.message
	if e.entraCode != 0 {
		msg = fmt.Sprintf("AADSTS%d: %s", e.entraCode, msg)
	}
	return msg + "\r\nTrace ID: " + traceID + "\r\nCorrelation ID: " + correlationID +
		"\r\nTimestamp: " + timestamp
}

// errorBody is the body of a refusal, with the fields Entra sends. MSAL
// decodes error, error_description, error_codes and correlation_id.
type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
}

// refuse logs a refused token request and answers it with e.
func (a *Authority) refuse(w http.ResponseWriter, r *http.Request, rec *audit.Record, e *oauthError) {
	a.log.Info("token request refused", "client_id", rec.CallerClientID, "error", e.code, "reason", e.message)
	rec.Reason = e.message

	traceID := uuid.NewString()
	// MSAL sends a client-request-id; Entra answers with it as the
	// correlation id, which lets a client match its logs to ours.
	correlationID := r.Header.Get("client-request-id")
	if _, err := uuid.Parse(correlationID); err != nil || len(correlationID) != 36 {
		correlationID = uuid.NewString()
	}
	timestamp := a.cfg.Now().UTC().Format("2006-01-02 15:04:05Z")
	codes := []int{}
	if e.entraCode != 0 {
		codes = append(codes, e.entraCode)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, e.status, errorBody{
		Error:            e.code,
		ErrorDescription: e.description(traceID, correlationID, timestamp),
		ErrorCodes:       codes,
		Timestamp:        timestamp,
		TraceID:          traceID,
		CorrelationID:    correlationID,
	})
}
