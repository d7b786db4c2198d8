package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// IssuerChain fetches the certificate chain (intermediate, root) of the
// keygate-ca issuer called name, as PEM, from keygate's own addition to
// the API (GET /certificates/issuers/{name}/chain), which the SDK has no
// method for. vaultURL empty means c.VaultURL.
func (c Credentials) IssuerChain(ctx context.Context, vaultURL, name string) ([]byte, error) {
	if vaultURL == "" {
		vaultURL = c.VaultURL
	}
	base := strings.TrimSuffix(vaultURL, "/")
	hc, err := Transport(c.CAFile)
	if err != nil {
		return nil, err
	}
	resource, err := ChallengeResource(ctx, hc, base)
	if err != nil {
		return nil, err
	}
	tok, err := c.Token(ctx, hc, resource+"/.default")
	if err != nil {
		return nil, err
	}
	u := base + "/certificates/issuers/" + url.PathEscape(name) + "/chain?api-version=2025-07-01"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching issuer chain: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("fetching issuer chain: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching issuer chain: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// ChallengeResource asks the vault at base which resource its tokens are
// for, from the bearer challenge of an unauthenticated request, as the
// SDK does.
func ChallengeResource(ctx context.Context, hc *http.Client, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/certificates?api-version=2025-07-01", nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	ch := resp.Header.Get("WWW-Authenticate")
	_, rest, ok := strings.Cut(ch, `resource="`)
	if !ok {
		return "", fmt.Errorf("the vault at %s sent no bearer challenge", base)
	}
	resource, _, _ := strings.Cut(rest, `"`)
	return resource, nil
}
