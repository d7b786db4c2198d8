package client

import (
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
)

// Certificates returns an azcertificates client for vaultURL (c.VaultURL
// when empty), wired as Secrets wires its client.
func (c Credentials) Certificates(vaultURL string) (*azcertificates.Client, error) {
	vaultURL, hc, cred, err := c.sdkParts(vaultURL)
	if err != nil {
		return nil, err
	}
	return azcertificates.NewClient(vaultURL, cred, &azcertificates.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: hc},
		DisableChallengeResourceVerification: NeedsVerificationOff(vaultURL),
	})
}
