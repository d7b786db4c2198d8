package client

import (
	"errors"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
)

// Certificates returns an azcertificates client for vaultURL (c.VaultURL
// when empty), wired as Secrets wires its client.
func (c Credentials) Certificates(vaultURL string) (*azcertificates.Client, error) {
	if vaultURL == "" {
		vaultURL = c.VaultURL
	}
	if vaultURL == "" {
		return nil, errors.New("no vault URL: give --vault-url")
	}
	hc, err := Transport(c.CAFile)
	if err != nil {
		return nil, err
	}
	cred, err := c.Credential(hc)
	if err != nil {
		return nil, err
	}
	return azcertificates.NewClient(vaultURL, cred, &azcertificates.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: hc},
		DisableChallengeResourceVerification: NeedsVerificationOff(vaultURL),
	})
}
