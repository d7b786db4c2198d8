package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/gateway/accesslog"
	"github.com/keygate/keygate/internal/gateway/h1"
	"github.com/keygate/keygate/internal/gateway/route"
	"github.com/keygate/keygate/internal/gateway/tlspolicy"
)

// Errors a handshake fails with. They reach the client only as an alert.
var (
	errNoListener = errors.New("no listener takes this server name, and the first requires SNI")
	errNotLoaded  = errors.New("the listener's certificate has not loaded yet")
	errHeld       = errors.New("the listener's certificate is not served: the vault refuses it (onKeyVaultError: DisableListener)")
)

// socket is one bound address and the listeners that share it. The
// socket, its servers and its bound listener outlive reloads that keep
// its address; its routing (state) is swapped whole by each.
type socket struct {
	g     *Gateway
	addr  string
	https bool
	ln    net.Listener

	// state is the routing of the configuration in force: requests and
	// handshakes load it once each, so a reload changes it for the next
	// request or connection while those in flight finish on theirs.
	state atomic.Pointer[socketState]

	// h1 accepts the connections and serves HTTP/1.x; srv serves those
	// that negotiated HTTP/2, which h1 queues on h2 (HTTPS only: h2 is
	// there even when enableHttp2 is off, since a reload may turn it on;
	// the listeners' ALPN decides).
	h1  *h1.Server
	srv *http.Server
	h2  *connQueue

	// handshakeListener remembers, per raw connection, which listener
	// its ClientHello chose, so that a failed handshake is counted against
	// it.
	handshakeListener syncMap[net.Conn, string]
}

// socketState is a socket's routing under one configuration: its
// listeners, the table that picks one by host or server name, and the
// access log.
type socketState struct {
	listeners []*listener
	table     *route.Table[*listener]
	accessLog *accesslog.Log
}

func newSocketState(listeners []*listener, log *accesslog.Log) *socketState {
	var entries []*route.Listener[*listener]
	for _, l := range listeners {
		entries = append(entries, &route.Listener[*listener]{Name: l.name, Hosts: l.hosts,
			Priority: l.priority, RequireSNI: l.requireSNI, Value: l})
	}
	return &socketState{listeners: listeners, table: route.NewTable(entries), accessLog: log}
}

func (st *socketState) names() []string {
	out := make([]string, len(st.listeners))
	for i, l := range st.listeners {
		out[i] = l.name
	}
	return out
}

// newSocket makes the socket of addr with its HTTP servers; it does not
// bind.
func (g *Gateway) newSocket(addr string, https bool) *socket {
	s := &socket{g: g, addr: addr, https: https}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          newDebugLog(g.log),
	}
	s.h1 = &h1.Server{
		Handler:           s,
		ReadHeaderTimeout: s.srv.ReadHeaderTimeout,
		IdleTimeout:       s.srv.IdleTimeout,
		Logger:            g.log,
		// ReverseProxy, for upgrades, looks for a server in the context.
		BaseContext: context.WithValue(context.Background(), http.ServerContextKey, s.srv),
	}
	if !https {
		return s
	}

	// The base configuration only chooses a listener; the listener's own
	// configuration, with the policy, does the handshake. Its h2 tells
	// net/http's server to serve the HTTP/2 connections h1 hands it.
	s.srv.TLSConfig = &tls.Config{GetConfigForClient: s.configForClient, NextProtos: []string{"h2", "http/1.1"}}
	s.h1.TLSConfig = s.srv.TLSConfig
	s.h1.HandshakeDone = s.handshakeDone
	s.h2 = newConnQueue()
	s.h1.NextProto = map[string]func(*tls.Conn){"h2": s.h2.push}

	// RFC 7540 bars CBC suites under HTTP/2; a policy that allows them
	// (the older predefined ones, a custom list) is the operator's
	// choice, so a client that negotiated one is not turned away.
	s.srv.HTTP2 = &http.HTTP2Config{PermitProhibitedCipherSuites: true}
	return s
}

// configForClient picks the listener for a ClientHello by its server
// name and returns that listener's TLS configuration.
func (s *socket) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	e := s.state.Load().table.ForServerName(hello.ServerName)
	if e == nil {
		return nil, errNoListener
	}
	s.handshakeListener.Store(hello.Conn, e.Value.name)
	return e.Value.tlsConfig, nil
}

// newTLSConfig is the listener's TLS configuration: the gateway's policy,
// ALPN, and the certificate its slot holds at the time of each handshake.
func (l *listener) newTLSConfig(policy tlspolicy.Policy, http2 bool) *tls.Config {
	c := &tls.Config{
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if kp := l.slot.KeyPair(); kp != nil {
				return kp, nil
			}
			if l.slot.Current() != nil {
				return nil, fmt.Errorf("listener %s: %w", l.name, errHeld)
			}
			return nil, fmt.Errorf("listener %s: %w", l.name, errNotLoaded)
		},
		// Called once per completed handshake, resumed ones included.
		VerifyConnection: func(cs tls.ConnectionState) error {
			result := "success"
			if cs.DidResume {
				result = "resumed"
			}
			l.g.metrics.Handshake(l.name, tlspolicy.VersionName(cs.Version), result)
			return nil
		},
	}
	if http2 {
		c.NextProtos = []string{"h2", "http/1.1"}
	}
	policy.Apply(c)
	return c
}

// ready reports whether the listener can serve: an HTTPS listener's
// certificate has loaded and is not held back.
func (l *listener) ready() bool {
	return !l.https || l.slot.Serving()
}
