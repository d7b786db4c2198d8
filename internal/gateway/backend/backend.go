// Package backend is the gateway's side of its backend pools: the
// servers of a pool as one backendHttpSettings reaches them, their health
// as probes see it, the choice of a server for a request (round robin over
// healthy servers, cookie affinity, connection draining), and the kept-alive
// connections to them.
package backend

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/gateway/certs"
)

// Settings are a backendHttpSettings, resolved.
type Settings struct {
	Name     string
	HTTPS    bool
	Port     int
	HostName string

	// PickHostName sends each server's own address as the Host header.
	PickHostName bool

	// RequestTimeout bounds the wait for a server's response headers.
	RequestTimeout time.Duration

	// Affinity turns on cookie-based affinity, with CookieName.
	Affinity   bool
	CookieName string

	// Drain is how long sessions stay on a server that turned unhealthy;
	// zero turns draining off.
	Drain time.Duration

	// Roots are the trusted root certificates HTTPS servers are verified
	// against; none means the system roots.
	Roots []*certs.Slot

	// Probe is the health probe; nil means the default probe.
	Probe *Probe
}

// Member is one server of a pool. Its health is read without locks.
type Member struct {
	// Host is the configured IP address or DNS name; Addr is Host:port.
	Host string
	Addr string

	// id is the affinity cookie's value for this server: a digest, so the
	// cookie does not reveal the server's address.
	id string

	known      atomic.Bool
	healthy    atomic.Bool
	drainUntil atomic.Int64

	reason atomic.Pointer[string]

	// fails counts consecutive failed probes; only the member's probe
	// goroutine touches it.
	fails int
}

func (m *Member) lastReason() string {
	if r := m.reason.Load(); r != nil {
		return *r
	}
	return ""
}

// Healthy reports whether the server takes new requests: it passed its
// last probe, or has not been probed yet.
func (m *Member) Healthy() bool { return !m.known.Load() || m.healthy.Load() }

// Draining reports whether the server is unhealthy but still finishing
// the sessions it had at now.
func (m *Member) Draining(now time.Time) bool {
	return !m.Healthy() && now.UnixNano() < m.drainUntil.Load()
}

// Options configure a Backend.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time

	// OnHealth, when set, is called when a server's health changes.
	OnHealth func(b *Backend, m *Member, healthy bool)
}

// Backend is one pool as one settings reach it. Safe for concurrent use.
type Backend struct {
	Pool     string
	Settings *Settings
	Members  []*Member

	// Transport keeps connections to the servers alive across requests.
	Transport interface {
		http.RoundTripper
		CloseIdleConnections()
	}

	opts    Options
	pool    *connPool
	byAddr  map[string]*Member
	next    atomic.Uint64
	probeHC *http.Client
	tlsBase *tls.Config
}

// New returns a Backend for the servers hosts (IP addresses or DNS names)
// of pool, reached through s. It does no I/O.
func New(pool string, hosts []string, s *Settings, opts Options) *Backend {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := &Backend{Pool: pool, Settings: s, opts: opts, byAddr: map[string]*Member{}}
	for _, h := range hosts {
		addr := net.JoinHostPort(h, strconv.Itoa(s.Port))
		sum := sha256.Sum256([]byte(pool + "\x00" + s.Name + "\x00" + addr))
		m := &Member{Host: h, Addr: addr, id: hex.EncodeToString(sum[:12])}
		b.Members = append(b.Members, m)
		b.byAddr[addr] = m
	}
	b.tlsBase = &tls.Config{MinVersion: tls.VersionTLS12}
	b.pool = newConnPool(b.dial, s.RequestTimeout)
	b.Transport = b.pool
	b.probeHC = &http.Client{
		Transport: b.newProbeTransport(),
		// A probe judges the answer it gets, redirects included.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return b
}

// dialer connects to servers; the request timeout bounds a connection
// attempt too.
func (b *Backend) dialer() *net.Dialer {
	return &net.Dialer{Timeout: min(b.Settings.RequestTimeout, 30*time.Second), KeepAlive: 30 * time.Second}
}

// dial connects to a server at addr, over TLS for HTTPS settings.
func (b *Backend) dial(ctx context.Context, addr string) (net.Conn, error) {
	d := b.dialer()
	if b.Settings.HTTPS {
		return b.dialTLS(ctx, d, "tcp", addr)
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	return conn, nil
}

// newProbeTransport is net/http's Transport, a new connection per probe,
// connecting as requests do.
func (b *Backend) newProbeTransport() *http.Transport {
	d := b.dialer()
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true, DisableCompression: true}
	if b.Settings.HTTPS {
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return b.dialTLS(ctx, d, network, addr)
		}
	}
	return tr
}

// dialTLS connects to a server and verifies its certificate for the name
// the server is reached by: the settings' hostName, else the server's own
// DNS name or IP address.
func (b *Backend) dialTLS(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	cfg := b.tlsBase.Clone()
	host, _, _ := net.SplitHostPort(addr)
	cfg.ServerName = host
	if b.Settings.HostName != "" {
		cfg.ServerName = b.Settings.HostName
	}
	if len(b.Settings.Roots) > 0 {
		pool, err := b.rootPool()
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	td := &tls.Dialer{NetDialer: d, Config: cfg}
	conn, err := td.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s over TLS: %w", addr, err)
	}
	return conn, nil
}

// rootPool builds the pool of trusted roots as their slots hold them now,
// so that a rotated root applies to the next connection.
func (b *Backend) rootPool() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, s := range b.Settings.Roots {
		m := s.Current()
		if m == nil {
			return nil, fmt.Errorf("trusted root certificate %q is not loaded yet", s.Name())
		}
		for _, c := range m.Roots {
			pool.AddCert(c)
		}
	}
	return pool, nil
}

// MemberByAddr returns the server at addr (host:port), or nil.
func (b *Backend) MemberByAddr(addr string) *Member { return b.byAddr[addr] }

// Pick chooses a server for a request that carried the affinity cookie
// value cookie (empty for none). With affinity, the cookie's server is
// kept while it is healthy or draining; otherwise servers take turns.
// setCookie says the response should carry the chosen server's cookie.
// Nil means no server is healthy.
func (b *Backend) Pick(cookie string) (m *Member, setCookie bool) {
	if b.Settings.Affinity && cookie != "" {
		now := b.opts.Now()
		for _, m := range b.Members {
			if m.id == cookie && (m.Healthy() || m.Draining(now)) {
				return m, false
			}
		}
	}
	n := uint64(len(b.Members))
	start := b.next.Add(1)
	for i := range n {
		if m := b.Members[(start+i)%n]; m.Healthy() {
			return m, b.Settings.Affinity
		}
	}
	return nil, false
}

// AffinityCookie returns the cookie that ties a client to m. secure marks
// it for HTTPS listeners.
func (b *Backend) AffinityCookie(m *Member) *http.Cookie {
	return &http.Cookie{Name: b.Settings.CookieName, Value: m.id, Path: "/"}
}

// HostHeader returns the Host header to send to m for a request that
// came with host.
func (b *Backend) HostHeader(m *Member, host string) string {
	switch {
	case b.Settings.HostName != "":
		return b.Settings.HostName
	case b.Settings.PickHostName:
		return m.Host
	}
	return host
}

// Scheme is http or https.
func (b *Backend) Scheme() string {
	if b.Settings.HTTPS {
		return "https"
	}
	return "http"
}

// Run probes every server until ctx ends, then closes idle connections.
// Probing starts once the trusted roots have loaded: a probe before that
// would fail for a reason that is not the server's.
func (b *Backend) Run(ctx context.Context) {
	defer b.Transport.CloseIdleConnections()
	for _, s := range b.Settings.Roots {
		select {
		case <-s.Ready():
		case <-ctx.Done():
			return
		}
	}

	var wg sync.WaitGroup
	p := b.Settings.Probe
	if p == nil {
		p = DefaultProbe(b.Settings)
	}
	for _, m := range b.Members {
		wg.Go(func() { b.probeLoop(ctx, p, m) })
	}
	wg.Wait()
	b.probeHC.CloseIdleConnections()
}

// Status is a server's health for the status page.
type Status struct {
	Pool     string `json:"pool"`
	Settings string `json:"settings"`
	Address  string `json:"address"`
	Healthy  bool   `json:"healthy"`
	Probed   bool   `json:"probed"`
	Reason   string `json:"reason,omitempty"`
}

// Status reports each server's health.
func (b *Backend) Status() []Status {
	out := make([]Status, 0, len(b.Members))
	for _, m := range b.Members {
		st := Status{Pool: b.Pool, Settings: b.Settings.Name, Address: m.Addr, Healthy: m.Healthy(), Probed: m.known.Load()}
		if !st.Healthy {
			st.Reason = m.lastReason()
		}
		out = append(out, st)
	}
	return out
}
