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
	"time"

	"github.com/keygate/keygate/internal/gateway/accesslog"
	"github.com/keygate/keygate/internal/gateway/backend"
	"github.com/keygate/keygate/internal/gateway/certs"
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

	// VaultHTTPClient, when set, reaches the vaults and the identity
	// agent instead of a client built from keyVault.trustedCaFile, for a
	// process that must dial in its own way.
	VaultHTTPClient *http.Client
}

// Gateway is a running application gateway. New prepares it, Start
// binds its ports and starts serving, Shutdown stops it; Run does all
// three.
type Gateway struct {
	cfg  *config.Gateway
	opts Options
	log  *slog.Logger

	metrics   *metrics.Metrics
	accessLog *accesslog.Log
	rotator   *rotate.Manager

	certSlots map[string]*certs.Slot
	rootSlots map[string]*certs.Slot
	backends  []*backend.Backend
	listeners []*listener
	sockets   []*socket
	admin     *http.Server
	adminLn   net.Listener

	// bg lives from Start to the end of Shutdown: certificate loading and
	// probes run under it, so they outlast the drain of requests.
	bg     context.Context
	stopBG context.CancelFunc
	wg     sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
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
	return &Gateway{cfg: cfg, opts: opts, log: opts.Logger}
}

// Run starts the gateway and serves until ctx ends, then shuts down
// gracefully within the configuration's shutdownTimeout.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(g.cfg.ShutdownTimeout)*time.Second)
	defer cancel()
	return g.Shutdown(sctx)
}

// Start builds the gateway from its configuration, binds every port and
// the admin listener, and starts serving, loading vault certificates and
// probing backends in the background. A listener whose certificate has not
// loaded refuses handshakes until it has. If any port cannot be bound,
// Start closes what it opened and returns the error.
func (g *Gateway) Start(ctx context.Context) (err error) {
	g.bg, g.stopBG = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			g.closeAll()
		}
	}()

	if err := g.build(); err != nil {
		return err
	}
	if err := g.bind(); err != nil {
		return err
	}

	// Background work: certificates from vaults, then backend probes.
	g.wg.Go(func() { g.rotator.Run(g.bg) })
	for _, b := range g.backends {
		g.wg.Go(func() { b.Run(g.bg) })
	}

	// Serving.
	for _, s := range g.sockets {
		g.wg.Go(func() { g.serve(s) })
	}
	if g.admin != nil {
		g.wg.Go(func() {
			if err := g.admin.Serve(g.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("admin listener stopped", "error", err)
			}
		})
	}
	g.log.Info("gateway started", "gateway", g.cfg.Name, "listeners", len(g.listeners),
		"admin", g.AdminAddr(), "tls_policy", g.cfg.Policy().Name)
	return nil
}

func (g *Gateway) serve(s *socket) {
	g.log.Info("listening", "address", s.ln.Addr().String(), "https", s.https, "listeners", s.names())
	if err := s.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		g.log.Error("listener stopped", "address", s.addr, "error", err)
	}
}

// bind listens on every socket and the admin address.
func (g *Gateway) bind() error {
	for _, s := range g.sockets {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("listening on %s for %v: %w", s.addr, s.names(), err)
		}
		s.ln = ln
	}
	if g.cfg.Admin.Address == config.Off {
		return nil
	}
	ln, err := net.Listen("tcp", string(g.cfg.Admin.Address))
	if err != nil {
		return fmt.Errorf("listening on %s for the admin listener: %w", g.cfg.Admin.Address, err)
	}
	g.adminLn = ln
	g.admin = &http.Server{Handler: g.adminRoutes(), ReadHeaderTimeout: 10 * time.Second}
	return nil
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
	g.log.Info("gateway shutting down", "gateway", g.cfg.Name)

	// Requests first, every port at once, so that the deadline is shared.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, s := range g.sockets {
		if s.srv == nil || s.ln == nil {
			continue
		}
		wg.Go(func() {
			if err := s.shutdown(ctx); err != nil {
				s.close()
				mu.Lock()
				errs = append(errs, fmt.Errorf("draining %s: %w", s.addr, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	// Then the admin listener and the background work.
	if g.admin != nil {
		if err := g.admin.Shutdown(ctx); err != nil {
			g.admin.Close()
		}
	}
	if g.stopBG != nil {
		g.stopBG()
	}
	g.wg.Wait()
	if err := g.accessLog.Close(); err != nil {
		errs = append(errs, err)
	}
	g.log.Info("gateway stopped", "gateway", g.cfg.Name)
	return errors.Join(errs...)
}

// closeAll undoes a partial Start.
func (g *Gateway) closeAll() {
	for _, s := range g.sockets {
		if s.ln != nil {
			s.ln.Close()
		}
	}
	if g.adminLn != nil {
		g.adminLn.Close()
	}
	if g.stopBG != nil {
		g.stopBG()
	}
	g.wg.Wait()
	g.accessLog.Close()
}

// Addr returns the address the named listener is bound to, known once
// Start has returned; empty for an unknown name.
func (g *Gateway) Addr(listener string) string {
	for _, l := range g.listeners {
		if l.name == listener && l.socket.ln != nil {
			return l.socket.ln.Addr().String()
		}
	}
	return ""
}

// AdminAddr returns the admin listener's address, or "" when it is off.
func (g *Gateway) AdminAddr() string {
	if g.adminLn == nil {
		return ""
	}
	return g.adminLn.Addr().String()
}

// Ready reports whether every listener can serve: each HTTPS listener's
// certificate has loaded.
func (g *Gateway) Ready() bool {
	for _, l := range g.listeners {
		if !l.ready() {
			return false
		}
	}
	return true
}
