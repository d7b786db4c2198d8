// Package gateway runs an application gateway from a configuration: HTTP
// and HTTPS listeners that terminate TLS with certificates from a vault or
// inline data, route requests by host and path to backend pools or
// redirects, probe the backends, and report through an access log,
// Prometheus metrics and an admin listener.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/gateway/config"
	"github.com/keygate/keygate/internal/gateway/metrics"
	"github.com/keygate/keygate/internal/gateway/rotate"
	"github.com/keygate/keygate/internal/seal"
)

// Options are what a Gateway takes beside its configuration.
type Options struct {
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger

	// AccessLog, when set, receives the access log instead of the place
	// the configuration names.
	AccessLog io.Writer

	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// CacheKey seals the certificate cache (certificateCache.path). It
	// comes from the host (a key file or an environment variable), never
	// from the configuration; the cache does not open without it.
	CacheKey seal.Key

	// MaxRetry caps the wait between failed vault reads and between
	// attempts to reopen a vault's event stream; zero means 5 minutes.
	MaxRetry time.Duration

	// NoEvents turns off the vaults' event streams, leaving polling
	// alone to find new versions.
	NoEvents bool

	// ConfigFile is the file the configuration came from; Reload reads
	// it again. Empty means the gateway cannot be reloaded.
	ConfigFile string

	// VaultHTTPClient, when set, reaches the vaults and the identity
	// agent instead of a client built from keyVault.trustedCaFile, for a
	// process that must dial in its own way.
	VaultHTTPClient *http.Client
}

// Gateway is a running application gateway. New prepares it, Start
// binds its ports and starts serving, Reload applies its configuration
// file again while it serves, Shutdown stops it; Run does start and stop.
type Gateway struct {
	initial *config.Gateway
	opts    Options
	log     *slog.Logger

	metrics *metrics.Metrics
	rotator *rotate.Manager

	// gen is the configuration in force; a reload replaces it whole.
	gen atomic.Pointer[generation]

	// mu serializes Start, reloads and Shutdown, and guards what follows.
	mu       sync.Mutex
	sockets  []*socket // in the order they were bound
	admin    *adminServer
	started  bool
	stopping bool

	// bg lives from Start to the end of Shutdown: certificate loading and
	// probes run under it, so they outlast the drain of requests.
	bg     context.Context
	stopBG context.CancelFunc
	wg     sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
}

// adminServer is the admin listener, bound to addr as configured.
type adminServer struct {
	addr config.OffOr
	ln   net.Listener
	srv  *http.Server
}

// New returns a gateway for cfg, which must come from config.Load or
// config.Parse. It does no I/O.
func New(cfg *config.Gateway, opts Options) *Gateway {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Gateway{initial: cfg, opts: opts, log: opts.Logger}
}

// current returns the configuration in force: the one Start or the last
// reload applied, or New's before Start.
func (g *Gateway) current() *generation {
	if gen := g.gen.Load(); gen != nil {
		return gen
	}
	return &generation{cfg: g.initial}
}

// Run starts the gateway and serves until ctx ends, then shuts down
// gracefully within the configuration's shutdownTimeout.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.shutdownTimeout())
	defer cancel()
	return g.Shutdown(sctx)
}

func (g *Gateway) shutdownTimeout() time.Duration {
	return time.Duration(g.current().cfg.ShutdownTimeout) * time.Second
}

// Start builds the gateway from its configuration, binds every port and
// the admin listener, and starts serving, loading vault certificates and
// probing backends in the background. A listener whose certificate has not
// loaded refuses handshakes until it has. If any port cannot be bound,
// Start closes what it opened and returns the error.
func (g *Gateway) Start(ctx context.Context) (err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.bg, g.stopBG = context.WithCancel(context.WithoutCancel(ctx))
	g.metrics = metrics.New(g.initial.Name)

	var (
		gen   *generation
		added []*socket
		admin *adminServer
	)
	defer func() {
		if err != nil {
			g.undo(gen, nil, added, admin)
			g.stopBG()
		}
	}()
	if gen, err = g.newGeneration(g.initial, nil); err != nil {
		return err
	}
	if err = g.buildRotation(gen); err != nil {
		return err
	}
	if added, err = g.openSockets(gen); err != nil {
		return err
	}
	if admin, err = g.openAdmin(gen.cfg); err != nil {
		return err
	}

	// Certificates from vaults, backend probes, then serving.
	g.wg.Go(func() { g.rotator.Run(g.bg) })
	g.activate(gen, added)
	g.setAdmin(admin)
	g.started = true
	g.log.Info("gateway started", "gateway", gen.cfg.Name, "listeners", len(gen.listeners),
		"admin", g.adminAddr(), "tls_policy", gen.cfg.Policy().Name)
	return nil
}

// openSockets binds the addresses of gen that no socket serves yet, and
// returns their new sockets. On error it closes what it bound.
func (g *Gateway) openSockets(gen *generation) (added []*socket, err error) {
	for _, addr := range gen.addrs {
		if g.socket(addr) != nil {
			continue
		}
		st := gen.states[addr]
		s := g.newSocket(addr, st.listeners[0].https)
		if s.ln, err = net.Listen("tcp", addr); err != nil {
			closeSockets(added)
			return nil, fmt.Errorf("listening on %s for %v: %w", addr, st.names(), err)
		}
		added = append(added, s)
	}
	return added, nil
}

// socket returns the socket bound to addr, or nil. Called with mu held.
func (g *Gateway) socket(addr string) *socket {
	for _, s := range g.sockets {
		if s.addr == addr {
			return s
		}
	}
	return nil
}

func closeSockets(sockets []*socket) {
	for _, s := range sockets {
		s.ln.Close()
	}
}

// openAdmin binds the admin listener cfg asks for, or returns the one
// that is already bound to that address; nil when it is off.
func (g *Gateway) openAdmin(cfg *config.Gateway) (*adminServer, error) {
	addr := cfg.Admin.Address
	switch {
	case addr == config.Off:
		return nil, nil
	case g.admin != nil && g.admin.addr == addr:
		return g.admin, nil
	}
	ln, err := net.Listen("tcp", string(addr))
	if err != nil {
		return nil, fmt.Errorf("listening on %s for the admin listener: %w", addr, err)
	}
	srv := &http.Server{Handler: g.adminRoutes(), ReadHeaderTimeout: 10 * time.Second}
	return &adminServer{addr: addr, ln: ln, srv: srv}, nil
}

// setAdmin makes a the admin listener: it starts serving a new one and
// drains the one it replaces in the background. Called with mu held.
func (g *Gateway) setAdmin(a *adminServer) {
	old := g.admin
	if a == old {
		return
	}
	g.admin = a
	if a != nil {
		g.wg.Go(func() {
			if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("admin listener stopped", "error", err)
			}
		})
	}
	if old != nil {
		// In the background: the reload asked for on it is still
		// answering.
		g.wg.Go(func() {
			ctx, cancel := context.WithTimeout(g.bg, g.shutdownTimeout())
			defer cancel()
			if err := old.srv.Shutdown(ctx); err != nil {
				old.srv.Close()
			}
			g.log.Info("admin listener closed", "address", old.ln.Addr().String())
		})
	}
}

// activate puts gen in force: it starts gen's new backends, swaps the
// routing of every socket gen keeps, and starts serving the sockets added
// for it. Called with mu held; nothing in it fails.
func (g *Gateway) activate(gen *generation, added []*socket) {
	for _, rb := range gen.backends {
		if rb.cancel != nil {
			continue
		}
		ctx, cancel := context.WithCancel(g.bg)
		rb.cancel = cancel
		for _, m := range rb.b.Members {
			g.metrics.BackendHealth(rb.b.Pool, rb.b.Settings.Name, m.Addr, true)
		}
		g.wg.Go(func() { rb.b.Run(ctx) })
	}
	g.sockets = append(g.sockets, added...)
	for _, addr := range gen.addrs {
		g.socket(addr).state.Store(gen.states[addr])
	}
	g.gen.Store(gen)
	for _, s := range added {
		g.wg.Go(func() { g.serve(s) })
	}
}

func (g *Gateway) serve(s *socket) {
	g.log.Info("listening", "address", s.ln.Addr().String(), "https", s.https,
		"listeners", s.state.Load().names())
	if err := s.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		g.log.Error("listener stopped", "address", s.addr, "error", err)
	}
}

// undo gives up gen, which was never put in force: it closes the sockets
// and admin listener bound for it and an access log prev does not share.
func (g *Gateway) undo(gen, prev *generation, added []*socket, admin *adminServer) {
	closeSockets(added)
	if admin != nil && admin != g.admin {
		admin.ln.Close()
	}
	if gen != nil {
		gen.closeAccessLog(prev)
	}
}

// Shutdown stops accepting connections, lets requests in flight finish
// until ctx ends (then closes what is left), and stops the background
// work. It waits for every goroutine the gateway started. Safe to call
// twice.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.shutdownOnce.Do(func() { g.shutdownErr = g.shutdown(ctx) })
	return g.shutdownErr
}

func (g *Gateway) shutdown(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopping = true
	name := g.current().cfg.Name
	g.log.Info("gateway shutting down", "gateway", name)

	// Requests first, every port at once, so that the deadline is shared.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, s := range g.sockets {
		wg.Go(func() {
			if err := s.drain(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	// Then the admin listener and the background work.
	if a := g.admin; a != nil {
		if err := a.srv.Shutdown(ctx); err != nil {
			a.srv.Close()
		}
	}
	if g.stopBG != nil {
		g.stopBG()
	}
	g.wg.Wait()
	if err := g.current().accessLog.Close(); err != nil {
		errs = append(errs, err)
	}
	g.log.Info("gateway stopped", "gateway", name)
	return errors.Join(errs...)
}

// drain shuts the socket down within ctx, then closes what is left.
func (s *socket) drain(ctx context.Context) error {
	if err := s.shutdown(ctx); err != nil {
		s.close()
		return fmt.Errorf("draining %s: %w", s.addr, err)
	}
	return nil
}

// Addr returns the address the named listener is bound to, known once
// Start has returned; empty for an unknown name.
func (g *Gateway) Addr(listener string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, l := range g.current().listeners {
		if s := g.socket(l.address); l.name == listener && s != nil {
			return s.ln.Addr().String()
		}
	}
	return ""
}

// AdminAddr returns the admin listener's address, or "" when it is off.
func (g *Gateway) AdminAddr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.adminAddr()
}

func (g *Gateway) adminAddr() string {
	if g.admin == nil {
		return ""
	}
	return g.admin.ln.Addr().String()
}

// Ready reports whether every listener can serve: each HTTPS listener's
// certificate has loaded.
func (g *Gateway) Ready() bool {
	for _, l := range g.current().listeners {
		if !l.ready() {
			return false
		}
	}
	return true
}
