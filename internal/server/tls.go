package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"time"

	"github.com/keygate/keygate/internal/atomicfile"
	"github.com/keygate/keygate/internal/pki"
	"github.com/keygate/keygate/internal/seal"
	"github.com/keygate/keygate/internal/store"
)

const keyCA = "tls-ca"

var caKeyAAD = []byte("keygate/v1;meta;tls-ca-key")

// caRecord is the local CA as stored: its certificate, and its key sealed
// under the master key.
type caRecord struct {
	Cert      []byte `json:"cert"`
	SealedKey []byte `json:"sealedKey"`
}

// serverCertValidity is how long a certificate the local CA issues the
// server is valid. It is issued again at every start, and by a running
// server once two thirds of it have passed (servercert.go).
const serverCertValidity = 365 * 24 * time.Hour

// serverCertificate returns the certificate the vault serves: the
// operator's, or one issued at each start by the vault's local CA, whose
// certificate it writes to tls/ca.pem for clients to trust.
func (s *Server) serverCertificate(ctx context.Context) (tls.Certificate, error) {
	if s.cfg.TLSCertFile != "" || s.cfg.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("loading --tls-cert and --tls-key: %w", err)
		}
		return cert, nil
	}
	ca, err := loadOrCreateCA(ctx, s.st, s.sealer, s.now())
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := atomicfile.Write(s.dir.caFile(), ca.CertPEM(), 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("writing CA certificate: %w", err)
	}
	return s.issueFrom(ca)
}

// issueServerCert issues the server a new certificate from its local CA,
// for a server that is running.
func (s *Server) issueServerCert(ctx context.Context) (tls.Certificate, error) {
	ca, err := loadOrCreateCA(ctx, s.st, s.sealer, s.now())
	if err != nil {
		return tls.Certificate{}, err
	}
	return s.issueFrom(ca)
}

func (s *Server) issueFrom(ca *pki.CA) (tls.Certificate, error) {
	names, ips := s.certNames()
	return ca.IssueServer(names, ips, s.now(), serverCertValidity)
}

// certNames lists the names the server certificate covers: the configured
// host name, the public URL's host, localhost, the names of the other
// vaults (*.DOMAIN, see vault_hosts.go), the listening address, and
// loopback.
func (s *Server) certNames() ([]string, []net.IP) {
	names := []string{"localhost", "*." + s.vaultDomain()}
	if s.cfg.Hostname != "" {
		names = append([]string{s.cfg.Hostname}, names...)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if u, err := url.Parse(s.cfg.PublicURL); err == nil && u.Hostname() != "" {
		if ip := net.ParseIP(u.Hostname()); ip != nil {
			ips = append(ips, ip)
		} else if !slices.Contains(names, u.Hostname()) {
			names = append([]string{u.Hostname()}, names...)
		}
	}
	host, _, _ := net.SplitHostPort(s.addr)
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
		ips = append(ips, ip)
	}
	return names, ips
}

func loadOrCreateCA(ctx context.Context, st store.Store, sealer *seal.Sealer, now time.Time) (*pki.CA, error) {
	var rec caRecord
	err := st.View(ctx, func(tx store.Tx) error {
		b, err := tx.Get(bucketMeta, keyCA)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &rec)
	})
	if errors.Is(err, store.ErrNotFound) {
		return createCA(ctx, st, sealer, now)
	}
	if err != nil {
		return nil, fmt.Errorf("reading local CA: %w", err)
	}
	keyDER, err := sealer.Open(rec.SealedKey, caKeyAAD)
	if err != nil {
		return nil, fmt.Errorf("opening local CA key: %w", err)
	}
	return pki.ParseCA(rec.Cert, keyDER)
}

func createCA(ctx context.Context, st store.Store, sealer *seal.Sealer, now time.Time) (*pki.CA, error) {
	ca, err := pki.NewCA("keygate local CA", now)
	if err != nil {
		return nil, err
	}
	keyDER, err := ca.KeyDER()
	if err != nil {
		return nil, err
	}
	sealed, err := sealer.Seal(keyDER, caKeyAAD)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(caRecord{Cert: ca.Cert.Raw, SealedKey: sealed})
	if err != nil {
		return nil, err
	}
	err = st.Update(ctx, func(tx store.Tx) error { return tx.Put(bucketMeta, keyCA, b) })
	if err != nil {
		return nil, fmt.Errorf("storing local CA: %w", err)
	}
	return ca, nil
}
