package keyvault

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/keygate/keygate/internal/gateway/certs"
)

// Classify names the condition a failed read puts a certificate in, from
// what the vault or the credential answered:
//
//   - 403 with innererror ForbiddenByFirewall: KeyVaultHasRestrictedAccess;
//     with SecretDisabled: SecretDisabled; otherwise (AccessDenied):
//     UserAssignedIdentityDoesNotHaveGetPermissionOnKeyVault.
//   - 404 VaultNotFound (no vault at that host: keygate answers so for a
//     deleted vault): KeyVaultSoftDeleted; other 404s:
//     SecretDeletedFromKeyVault.
//   - 408, 429 and 5xx, and no answer at all: KeyVaultUnreachable.
//   - The identity agent refusing the identity (400, as Azure's
//     endpoints do for an identity not assigned to the host):
//     UserAssignedManagedIdentityNotFound; the agent or authority not
//     answering, or answering 5xx: IdentityUnavailable; any other
//     refusal of the credential, or a 401 from the vault after the
//     token was sent: IdentityAuthenticationFailed.
func Classify(err error) certs.Code {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return classifyResponse(re)
	}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) {
		return classifyAuthentication(af)
	}
	// A credential that cannot even try says so with its name first; the
	// SDK does not export its type.
	for _, name := range []string{"ManagedIdentityCredential", "ClientSecretCredential", "WorkloadIdentityCredential"} {
		if strings.HasPrefix(err.Error(), name) {
			return certs.IdentityUnavailable
		}
	}
	// Dial errors, timeouts, TLS failures: the vault did not answer.
	return certs.KeyVaultUnreachable
}

func classifyResponse(re *azcore.ResponseError) certs.Code {
	switch s := re.StatusCode; {
	case s == http.StatusForbidden:
		switch innerCode(re) {
		case "ForbiddenByFirewall":
			return certs.KeyVaultHasRestrictedAccess
		case "SecretDisabled":
			return certs.SecretDisabled
		}
		if re.ErrorCode == "SecretDisabled" {
			return certs.SecretDisabled
		}
		return certs.UserAssignedIdentityDoesNotHaveGetPermissionOnKeyVault
	case s == http.StatusNotFound:
		if re.ErrorCode == "VaultNotFound" {
			return certs.KeyVaultSoftDeleted
		}
		return certs.SecretDeletedFromKeyVault
	case s == http.StatusUnauthorized:
		return certs.IdentityAuthenticationFailed
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		return certs.KeyVaultUnreachable
	}
	return certs.KeyVaultRequestFailed
}

func classifyAuthentication(af *azidentity.AuthenticationFailedError) certs.Code {
	resp := af.RawResponse
	switch {
	case resp == nil:
		// The request got no answer: the agent is not there.
		return certs.IdentityUnavailable
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusNotFound:
		return certs.UserAssignedManagedIdentityNotFound
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return certs.IdentityUnavailable
	}
	return certs.IdentityAuthenticationFailed
}

// innerCode returns the innererror code of a Key Vault error body, or "".
func innerCode(re *azcore.ResponseError) string {
	if re.RawResponse == nil {
		return ""
	}
	body, err := runtime.Payload(re.RawResponse)
	if err != nil {
		return ""
	}
	var doc struct {
		Error struct {
			InnerError struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return ""
	}
	return doc.Error.InnerError.Code
}
