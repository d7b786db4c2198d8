package client

import (
	"context"
	"errors"
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
	scope, err := challengeScope(ctx, hc, base)
	if err != nil {
		return nil, err
	}
	tok, err := c.Token(ctx, hc, scope)
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

// challengeScope asks the vault at base which scope its tokens are for,
// from the bearer challenge of an unauthenticated request, as the SDK
// does.
func challengeScope(ctx context.Context, hc *http.Client, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/certificates?api-version=2025-07-01", nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	scope, err := ChallengeScope(resp.Header.Get("WWW-Authenticate"))
	if err != nil {
		return "", fmt.Errorf("asking the vault at %s for its token scope: %w", base, err)
	}
	return scope, nil
}

// ChallengeScope returns the token scope a Key Vault bearer challenge
// (the WWW-Authenticate header of a 401) names: its scope, or its
// resource with "/.default", as the SDKs read it.
func ChallengeScope(header string) (string, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(header), "Bearer ")
	if !ok {
		return "", errors.New("the answer carries no bearer challenge")
	}
	params := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			params[strings.ToLower(k)] = strings.Trim(v, `"`)
		}
	}
	if scope := params["scope"]; scope != "" {
		return scope, nil
	}
	if res := params["resource"]; res != "" {
		return strings.TrimSuffix(res, "/") + "/.default", nil
	}
	return "", errors.New("the bearer challenge names no resource")
}
