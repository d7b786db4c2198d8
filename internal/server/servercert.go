package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// serverCertCheck is how often the server looks at its own certificate:
// whether the operator's files changed, or the one the local CA issued
// has lived two thirds of its validity. Both checks are cheap.
const serverCertCheck = time.Minute

// servingCert is the certificate the vault serves, kept current while it
// runs: the operator's files are read again when they change (a renewal
// by cert-manager or certbot needs no restart), and a certificate of the
// local CA is reissued before it expires. New handshakes get the new one;
// open connections keep theirs.
type servingCert struct {
	mu   sync.Mutex
	cert *tls.Certificate
	leaf *x509.Certificate

	// files are the operator's certificate and key, empty for the local
	// CA's; stamp, guarded by mu, is what they were when last read.
	certFile, keyFile string
	stamp             string
}

func newServingCert(cert tls.Certificate, certFile, keyFile string) (*servingCert, error) {
	sc := &servingCert{certFile: certFile, keyFile: keyFile}
	if certFile != "" {
		sc.stamp = fileStamp(certFile, keyFile)
	}
	return sc, sc.set(cert)
}

func (sc *servingCert) set(cert tls.Certificate) error {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("reading server certificate: %w", err)
	}
	cert.Leaf = leaf
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.cert, sc.leaf = &cert, leaf
	return nil
}

// filesChanged reports whether the operator's files changed since it was
// last asked (or since the start), and remembers how they are now.
func (sc *servingCert) filesChanged() bool {
	stamp := fileStamp(sc.certFile, sc.keyFile)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	changed := stamp != sc.stamp
	sc.stamp = stamp
	return changed
}

// get is the listener's tls.Config.GetCertificate.
func (sc *servingCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.cert, nil
}

// current returns the leaf being served.
func (sc *servingCert) current() *x509.Certificate {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.leaf
}

// isServed reports whether raw is the leaf being served, for a client of
// the server's own listener that trusts exactly that.
func (sc *servingCert) isServed(raw []byte) bool {
	return bytes.Equal(sc.current().Raw, raw)
}

// fileStamp identifies the contents of the files by size and time of
// change, so that a rewrite is noticed without reading them.
func fileStamp(paths ...string) string {
	var b bytes.Buffer
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(&b, "%s missing;", p)
			continue
		}
		fmt.Fprintf(&b, "%s %d %d;", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

// RefreshServerCertificate checks the served certificate once, as the
// server does every minute: it reloads the operator's files if they
// changed, or reissues the local CA's certificate once two thirds of its
// validity have passed. Tests that drive the clock call it.
func (s *Server) RefreshServerCertificate(ctx context.Context) error {
	sc := s.serving
	if sc.certFile != "" {
		return s.reloadCertFiles(sc)
	}
	leaf := sc.current()
	renewAt := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
	if s.now().Before(renewAt) {
		return nil
	}
	cert, err := s.issueServerCert(ctx)
	if err != nil {
		return fmt.Errorf("renewing the server certificate: %w", err)
	}
	if err := sc.set(cert); err != nil {
		return err
	}
	s.log.Info("server certificate renewed", "serial", cert.Leaf.SerialNumber.String(), "not_after", cert.Leaf.NotAfter,
		"previous_serial", leaf.SerialNumber.String())
	return nil
}

// reloadCertFiles reads the operator's files again if they changed. A pair
// that does not load, or whose certificate has expired, is not installed:
// the server keeps serving the one it has, and says why.
func (s *Server) reloadCertFiles(sc *servingCert) error {
	if !sc.filesChanged() {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(sc.certFile, sc.keyFile)
	if err == nil {
		if cert.Leaf == nil || !s.now().Before(cert.Leaf.NotAfter) {
			err = errors.New("the certificate has expired")
		}
	}
	if err != nil {
		return fmt.Errorf("reloading --tls-cert and --tls-key (the previous certificate stays): %w", err)
	}
	previous := sc.current()
	if err := sc.set(cert); err != nil {
		return err
	}
	s.log.Info("server certificate reloaded from its files", "serial", cert.Leaf.SerialNumber.String(),
		"not_after", cert.Leaf.NotAfter, "previous_serial", previous.SerialNumber.String())
	return nil
}

// localCredentialCheck is how often a server that runs its own agent
// renews that agent's enrolment credential when it has less than a week
// to run (local_agent.go).
const localCredentialCheck = time.Hour

// RenewLocalCredential gives the server's own agent a new enrolment
// credential when its credential has less than a week to run, as the
// server does every hour; a no-op without an agent. The agent reads the
// new one from its file. Tests that drive the clock call it.
func (s *Server) RenewLocalCredential(ctx context.Context) error {
	if s.agent == nil {
		return nil
	}
	if err := s.ensureLocalCredential(ctx); err != nil {
		return fmt.Errorf("renewing the local agent's credential: %w", err)
	}
	return nil
}

// keepCredentials runs RefreshServerCertificate every serverCertCheck and
// RenewLocalCredential every localCredentialCheck until ctx ends. A
// failure is logged once until the check succeeds again, and retried at
// the next tick.
func (s *Server) keepCredentials(ctx context.Context) {
	certTick := time.NewTicker(serverCertCheck)
	defer certTick.Stop()
	credTick := time.NewTicker(localCredentialCheck)
	defer credTick.Stop()
	failed := map[string]string{}
	report := func(what string, err error) {
		switch {
		case err != nil && err.Error() != failed[what]:
			s.log.Error(what+" failed", "err", err)
			failed[what] = err.Error()
		case err == nil:
			delete(failed, what)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-certTick.C:
			report("refreshing the server certificate", s.RefreshServerCertificate(ctx))
		case <-credTick.C:
			report("renewing the local agent's credential", s.RenewLocalCredential(ctx))
		}
	}
}
