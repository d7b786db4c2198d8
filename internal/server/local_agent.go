package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/agent"
	"github.com/keygate/keygate/internal/atomicfile"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/identity"
	"github.com/keygate/keygate/internal/vault"
)

// The identity and host of the agent a server runs for local clients
// (Config.AgentListen), as `keygate up` does.
const (
	// LocalIdentity is the managed identity the local agent serves. It is
	// granted get on the default vault's secrets when it is created, and
	// nothing else; an administrator may change that like any grant.
	LocalIdentity = "keygate-local"

	// LocalHost is the host the local identity is assigned to.
	LocalHost = "localhost"
)

// localCredentialRenewal is how long before its expiry the local agent's
// credential is replaced at start.
const localCredentialRenewal = 7 * 24 * time.Hour

// openAgent prepares the local identity and its host and opens an agent
// for them, when the configuration asks for one. The agent reaches the
// authority over this server's own HTTPS listener, trusting exactly the
// certificate the server serves.
func (s *Server) openAgent(ctx context.Context) error {
	if s.cfg.AgentListen == "" {
		return nil
	}
	if _, err := s.ensureLocalIdentity(ctx); err != nil {
		return fmt.Errorf("preparing the local identity: %w", err)
	}
	if err := s.ensureLocalCredential(ctx); err != nil {
		return fmt.Errorf("preparing the local identity's host: %w", err)
	}
	header, err := agent.ReadHeaderFromEnvFile(s.dir.agentEnvFile())
	if err != nil {
		return err
	}
	hc := s.selfClient()
	s.agent, err = agent.New(agent.Config{
		Authority:      s.authority.TenantURL(),
		Host:           LocalHost,
		CredentialFile: s.dir.agentCredentialFile(),
		HTTPClient:     hc,
		Listen:         s.cfg.AgentListen,
		Header:         header,
		Now:            s.now,
		Logger:         s.log.With("component", "agent"),
		Audit:          s.audit,
	})
	if err != nil {
		return err
	}
	if err := s.agent.Open(ctx); err != nil {
		return err
	}
	return s.agent.WriteEnvFile(s.dir.agentEnvFile())
}

// ensureLocalIdentity creates the local identity on first start, with get
// on the default vault's secrets. Later starts leave its grants alone.
func (s *Server) ensureLocalIdentity(ctx context.Context) (identity.ManagedIdentity, error) {
	mi, err := s.authority.ManagedIdentity(ctx, LocalIdentity)
	if !errors.Is(err, identity.ErrIdentityNotFound) {
		return mi, err
	}
	mi, err = s.authority.CreateManagedIdentity(ctx, LocalIdentity, identity.ManagedIdentityOptions{})
	if err != nil {
		return mi, err
	}
	_, err = s.vaults.SetAccessPolicy(ctx, vault.DefaultVault, authz.AccessPolicy{
		TenantID: s.authority.TenantID(), ObjectID: mi.PrincipalID,
		Permissions: authz.Permissions{Secrets: []string{authz.SecretGet}},
	})
	return mi, err
}

// ensureLocalCredential assigns the local identity to the local host and
// makes sure the credential file holds a credential of the host that is
// good for another week, issuing a new one otherwise.
func (s *Server) ensureLocalCredential(ctx context.Context) error {
	host, cred, err := s.authority.AssignIdentity(ctx, LocalIdentity, LocalHost, 0)
	if err != nil {
		return err
	}
	if cred == "" {
		cred = s.keptLocalCredential(ctx, host)
	}
	if cred == "" {
		if _, cred, err = s.authority.RotateHostCredential(ctx, LocalHost, 0); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(s.dir.path("agent"), 0o700); err != nil {
		return fmt.Errorf("creating agent folder: %w", err)
	}
	if err := atomicfile.Write(s.dir.agentCredentialFile(), []byte(cred+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing agent credential: %w", err)
	}
	return nil
}

// keptLocalCredential returns the credential in the credential file if
// the authority takes it and it has more than a week to run, else "".
func (s *Server) keptLocalCredential(ctx context.Context, host identity.Host) string {
	if !slices.Contains(host.Identities, LocalIdentity) || s.now().Add(localCredentialRenewal).After(host.CredentialExpires) {
		return ""
	}
	b, err := os.ReadFile(s.dir.agentCredentialFile())
	if err != nil {
		return ""
	}
	cred := strings.TrimSpace(string(b))
	if s.authority.VerifyHostCredential(ctx, LocalHost, cred) != nil {
		return ""
	}
	return cred
}

// selfClient returns an HTTP client that reaches this server's listener
// whatever name the authority's URL has, and trusts only the certificate
// it serves at the time of the handshake (which a renewal changes).
func (s *Server) selfClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is the comparison below: the peer must present
		// exactly the leaf this server serves, whatever its names.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !s.serving.isServed(cs.PeerCertificates[0].Raw) {
				return errors.New("the peer is not this server: its certificate is not the one this server serves")
			}
			return nil
		},
	}
	addr := s.addr
	if host, port, _ := net.SplitHostPort(addr); net.ParseIP(host).IsUnspecified() {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// AgentEnvironment is what a client of the local agent needs in its
// environment (IDENTITY_ENDPOINT and IDENTITY_HEADER, as NAME=VALUE), or
// nil when the server runs no agent. Known once Open has returned.
func (s *Server) AgentEnvironment() []string {
	if s.agent == nil {
		return nil
	}
	return s.agent.Environment()
}

// AgentEnvFile is the file the local agent's environment is written to.
func (s *Server) AgentEnvFile() string { return s.dir.agentEnvFile() }
