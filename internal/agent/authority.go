package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/identity"
)

// hostInfoMaxAge is how long the agent trusts its copy of the host's
// identities before asking the authority again.
const hostInfoMaxAge = 5 * time.Minute

// maxAuthorityBody bounds what the agent reads of an authority response.
const maxAuthorityBody = 1 << 20

// refusal is a 4xx answer of the authority: it was reached, and said no.
// Its description is the authority's, safe to show a client.
type refusal struct {
	status      int
	code        string
	description string
}

func (r *refusal) Error() string { return r.code + ": " + r.description }

// credentialRefused reports whether the authority refused the host's
// credential itself, rather than the request.
func (r *refusal) credentialRefused() bool {
	return r.status == http.StatusUnauthorized
}

// authorityClient calls the authority's host endpoints with the host's
// enrolment credential, and remembers what the authority said about the
// credential and the host's identities. It is safe for concurrent use.
type authorityClient struct {
	base           string // authority with tenant
	host           string
	hc             *http.Client
	credentialFile string
	now            func() time.Time

	mu           sync.Mutex
	credential   string    // the enrolment credential; never logged
	credExpires  time.Time // zero until the authority says
	credRefused  string    // why the authority refused the credential; "" if it did not
	identities   []identity.HostIdentityInfo
	identitiesAt time.Time // zero until known
}

// loadCredential reads the credential file, if the agent has one. A
// credential that differs from the one held replaces it and clears what
// the authority said about the old one.
func (c *authorityClient) loadCredential() error {
	if c.credentialFile == "" {
		if c.credential == "" {
			return errors.New("no enrolment credential")
		}
		return nil
	}
	b, err := os.ReadFile(c.credentialFile)
	if err != nil {
		return fmt.Errorf("reading credential file: %w", err)
	}
	cred := strings.TrimSpace(string(b))
	if cred == "" {
		return fmt.Errorf("reading credential file %s: it is empty", c.credentialFile)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cred != c.credential {
		c.credential = cred
		c.credExpires, c.credRefused = time.Time{}, ""
	}
	return nil
}

// credentialProblem says why the credential cannot be used, or "". While
// it cannot, the credential file is read again on every call, so that a
// rotated credential written there is picked up.
func (c *authorityClient) credentialProblem() string {
	problem := c.knownProblem()
	if problem != "" && c.credentialFile != "" && c.loadCredential() == nil {
		problem = c.knownProblem()
	}
	return problem
}

// knownProblem says what is known to be wrong with the credential held.
func (c *authorityClient) knownProblem() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.credRefused != "":
		return c.credRefused
	case !c.credExpires.IsZero() && !c.now().Before(c.credExpires):
		return "The host's enrolment credential expired at " + c.credExpires.UTC().Format(time.RFC3339) +
			"; issue a new one with `keygate identity host credential` and give it to the agent."
	}
	return ""
}

// cachedIdentities returns the host's identities as last heard, and
// whether that was recent enough to trust.
func (c *authorityClient) cachedIdentities() ([]identity.HostIdentityInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fresh := !c.identitiesAt.IsZero() && c.now().Sub(c.identitiesAt) < hostInfoMaxAge
	return c.identities, fresh
}

// expires returns the credential's expiry as last heard, or zero.
func (c *authorityClient) expires() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.credExpires
}

// forgetIdentities makes the next request ask the authority for the
// host's identities again.
func (c *authorityClient) forgetIdentities() {
	c.mu.Lock()
	c.identitiesAt = time.Time{}
	c.mu.Unlock()
}

// refreshHost asks the authority for the host's identities.
func (c *authorityClient) refreshHost(ctx context.Context) ([]identity.HostIdentityInfo, error) {
	var info identity.HostInfo
	if err := c.call(ctx, http.MethodGet, "/managedidentity/host", nil, &info); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.identities, c.identitiesAt = info.Identities, c.now()
	c.credExpires = time.Unix(info.CredentialExpiresOn, 0)
	return info.Identities, nil
}

// token asks the authority for a token of the identity with clientID (or,
// with kind empty, the host's only identity) for resource.
func (c *authorityClient) token(ctx context.Context, kind, value, resource string) (identity.ManagedTokenResponse, error) {
	form := url.Values{"resource": {resource}}
	if kind != "" {
		form.Set(kind, value)
	}
	var out identity.ManagedTokenResponse
	if err := c.call(ctx, http.MethodPost, "/managedidentity/token", form, &out); err != nil {
		return out, err
	}
	if _, err := strconv.ParseInt(out.ExpiresOn, 10, 64); err != nil || out.AccessToken == "" {
		return out, errors.New("reading token response: access_token or expires_on missing")
	}
	c.mu.Lock()
	c.credExpires = time.Unix(out.CredentialExpiresOn, 0)
	c.mu.Unlock()
	return out, nil
}

// call sends one request to the authority and decodes its JSON answer. A
// refusal of the credential is remembered, so that requests stop going
// out with a credential the authority will not take; but when the
// credential file holds another credential by then (it was rotated and
// the old one refused at once), the request goes again with that one.
func (c *authorityClient) call(ctx context.Context, method, path string, form url.Values, out any) error {
	err := c.send(ctx, method, path, form, out)
	var r *refusal
	if !errors.As(err, &r) || !r.credentialRefused() || c.credentialFile == "" {
		return err
	}
	before := c.heldCredential()
	if c.loadCredential() != nil || c.heldCredential() == before {
		return err
	}
	return c.send(ctx, method, path, form, out)
}

// heldCredential returns the credential requests go out with.
func (c *authorityClient) heldCredential() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.credential
}

// send makes one request of call.
func (c *authorityClient) send(ctx context.Context, method, path string, form url.Values, out any) error {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("calling authority: %w", err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	c.mu.Lock()
	req.SetBasicAuth(c.host, c.credential)
	c.mu.Unlock()

	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("calling authority: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAuthorityBody))
	if err != nil {
		return fmt.Errorf("reading authority response: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("reading authority response: %w", err)
		}
		return nil
	}
	return c.failure(resp.StatusCode, b)
}

// failure turns an answer other than 200 into an error: a *refusal for
// 4xx, a plain error (the authority is not working) otherwise.
func (c *authorityClient) failure(status int, body []byte) error {
	if status < 400 || status >= 500 {
		return fmt.Errorf("authority answered %d", status)
	}
	var e struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return fmt.Errorf("authority answered %d without an error body", status)
	}
	r := &refusal{status: status, code: e.Error, description: e.ErrorDescription}
	if r.credentialRefused() {
		c.mu.Lock()
		c.credRefused = "The identity authority refused this host's enrolment credential: " + r.description
		c.mu.Unlock()
	}
	return r
}
