package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/config"
	"github.com/keygate/keygate/internal/gateway/rotate"
)

// ErrNotRunning is what Reload returns before Start and once Shutdown
// has begun.
var ErrNotRunning = errors.New("the gateway is not running")

// ReloadError is a reload that changed nothing: the file does not
// validate, changes a setting that cannot change at run time, or cannot be
// applied (a port or file that cannot be opened). The old configuration
// keeps serving.
type ReloadError struct {
	// Problems are every problem found, each naming its place in the
	// file when it has one, as `keygate gateway validate` prints them.
	Problems config.Errors
}

func (e *ReloadError) Error() string {
	return "configuration not reloaded: " + strings.ReplaceAll(e.Problems.Error(), "\n", "; ")
}

// asReloadError makes err a ReloadError, keeping a validation's list.
func asReloadError(err error) *ReloadError {
	var errs config.Errors
	if errors.As(err, &errs) {
		return &ReloadError{Problems: errs}
	}
	return &ReloadError{Problems: config.Errors{{Msg: err.Error()}}}
}

// ReloadResult is what a successful reload changed, by listener name.
type ReloadResult struct {
	Generation uint64   `json:"generation"`
	Added      []string `json:"listenersAdded"`
	Removed    []string `json:"listenersRemoved"`
	Changed    []string `json:"listenersChanged"`
	Unchanged  int      `json:"listenersUnchanged"`
}

// reloadLoadWait bounds how long a reload waits for the certificates it
// adds to load before it puts them in force; one still loading then is
// served once it loads, as at start.
const reloadLoadWait = 10 * time.Second

// Reload reads the configuration file again (Options.ConfigFile) and
// applies it while the gateway serves. The new file is loaded and
// checked completely first: if anything is wrong the gateway keeps its
// configuration and Reload returns a *ReloadError listing the problems.
// Otherwise listeners on addresses that stay keep their bound sockets and
// take the new routing, host names and TLS settings for their next
// connection or request, while requests in flight finish on the old;
// new addresses are bound and removed ones drained; certificates and
// backends whose configuration did not change keep their state. Safe
// for concurrent use: reloads run one at a time.
func (g *Gateway) Reload(ctx context.Context) (*ReloadResult, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.started || g.stopping {
		return nil, ErrNotRunning
	}

	res, err := g.reload(ctx)
	now := g.opts.Now()
	if err != nil {
		g.metrics.Reload(false, now)
		var re *ReloadError
		errors.As(err, &re)
		g.log.Error("configuration not reloaded; the old one keeps serving",
			"file", g.opts.ConfigFile, "errors", re.Problems.Error())
		return nil, err
	}
	g.metrics.Reload(true, now)
	g.log.Info("configuration reloaded", "file", g.opts.ConfigFile, "generation", res.Generation,
		"listeners_added", len(res.Added), "listeners_removed", len(res.Removed),
		"listeners_changed", len(res.Changed), "listeners_unchanged", res.Unchanged)
	return res, nil
}

// reload is Reload with mu held. Until commit nothing the old
// configuration uses is touched, and what was opened is closed on error.
func (g *Gateway) reload(ctx context.Context) (*ReloadResult, error) {
	if g.opts.ConfigFile == "" {
		return nil, asReloadError(errors.New("the gateway was not started from a configuration file"))
	}
	old := g.gen.Load()
	cfg, err := config.Load(g.opts.ConfigFile)
	if err != nil {
		return nil, asReloadError(err)
	}
	if errs := g.fixedSettings(old, cfg); len(errs) > 0 {
		return nil, &ReloadError{Problems: errs}
	}

	gen, err := g.newGeneration(cfg, old)
	if err != nil {
		return nil, asReloadError(err)
	}
	added, err := g.openSockets(gen)
	if err != nil {
		g.undo(gen, old, nil, nil)
		return nil, asReloadError(err)
	}
	admin, err := g.openAdmin(cfg)
	if err != nil {
		g.undo(gen, old, added, nil)
		return nil, asReloadError(err)
	}

	g.commit(ctx, old, gen, added, admin)
	return summarize(old, gen), nil
}

// fixedSettings lists what cfg changes that a running gateway cannot
// take: they are refused by name, and the gateway must be restarted for
// them.
func (g *Gateway) fixedSettings(old *generation, cfg *config.Gateway) config.Errors {
	var errs config.Errors
	fixed := func(path, why string) {
		errs = append(errs, config.Error{Path: path,
			Msg: "cannot change while the gateway runs (" + why + "); restart the gateway to change it"})
	}
	was := old.cfg
	if cfg.Name != was.Name {
		fixed("name", "it labels every metric")
	}
	if old.clients != nil {
		if !sameJSON(cfg.Identity, was.Identity) {
			fixed("identity", "the vault client and event streams authenticate with it")
		}
		if !sameJSON(cfg.KeyVault, was.KeyVault) {
			fixed("keyVault", "the vault client and event streams are made from it")
		}
	}
	if cfg.CertificateCache != was.CertificateCache {
		fixed("certificateCache", "the cache is opened with its key at start")
	}
	if cfg.KeyVaultPollInterval != was.KeyVaultPollInterval {
		fixed("keyVaultPollInterval", "the certificates' schedules are set at start")
	}
	if cfg.OnKeyVaultError != was.OnKeyVaultError {
		fixed("onKeyVaultError", "the certificates' workers are set up with it at start")
	}

	// A bound address serves HTTP or HTTPS for good: its server is made
	// for one or the other.
	for i, l := range cfg.HTTPListeners {
		s := g.socket(l.Address())
		if https := l.Protocol == config.ProtocolHTTPS; s != nil && s.https != https {
			errs = append(errs, config.Error{Path: fmt.Sprintf("httpListeners[%d].protocol", i),
				Msg: fmt.Sprintf("%s cannot change from %s to %s while the gateway runs; "+
					"use another port, or restart the gateway", l.Address(), protocolName(s.https), l.Protocol)})
		}
	}
	return errs
}

func protocolName(https bool) string {
	if https {
		return config.ProtocolHTTPS
	}
	return config.ProtocolHTTP
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// commit puts gen in force in place of old; nothing in it fails. The
// certificates gen adds start loading first, so that the listeners that
// serve them have them (within reloadLoadWait) when they take gen's
// routing; old's workers and probes stop once nothing routes to them.
func (g *Gateway) commit(ctx context.Context, old, gen *generation, added []*socket, admin *adminServer) {
	g.rotator.EnableEvents(g.eventOptions(gen))
	oldCerts, newCerts := old.vaultCertificates(), gen.vaultCertificates()
	var fresh []*certs.Slot
	both := newCerts
	for _, c := range newCerts {
		if !hasSlot(oldCerts, c.Slot) {
			fresh = append(fresh, c.Slot)
		}
	}
	for _, c := range oldCerts {
		if !hasSlot(newCerts, c.Slot) {
			both = append(both, c)
		}
	}
	g.rotator.Sync(both)
	waitLoaded(ctx, fresh)

	g.activate(gen, added)
	g.rotator.Sync(newCerts)
	g.retire(old, gen)
	g.setAdmin(admin)
}

func hasSlot(cs []rotate.Certificate, s *certs.Slot) bool {
	return slices.ContainsFunc(cs, func(c rotate.Certificate) bool { return c.Slot == s })
}

// waitLoaded waits until each slot has loaded, reloadLoadWait at most.
func waitLoaded(ctx context.Context, slots []*certs.Slot) {
	t := time.NewTimer(reloadLoadWait)
	defer t.Stop()
	for _, s := range slots {
		select {
		case <-s.Ready():
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// retire stops what old had and gen does not: sockets of addresses no
// longer configured are drained in the background within shutdownTimeout,
// backends' probes stop (requests in flight through them finish), and an
// access log gen replaced is closed once requests that began under old
// have had shutdownTimeout to finish. Called with mu held.
func (g *Gateway) retire(old, gen *generation) {
	timeout := g.shutdownTimeout()
	kept := g.sockets[:0:0]
	for _, s := range g.sockets {
		if _, ok := gen.states[s.addr]; ok {
			kept = append(kept, s)
			continue
		}
		g.log.Info("listener address removed: draining", "address", s.addr,
			"listeners", s.state.Load().names())
		g.wg.Go(func() {
			ctx, cancel := context.WithTimeout(g.bg, timeout)
			defer cancel()
			if err := s.drain(ctx); err != nil {
				g.log.Warn("removed listener address not drained in time", "error", err)
			}
		})
	}
	g.sockets = kept

	for fp, rb := range old.backends {
		if gen.backends[fp] != rb {
			rb.cancel()
		}
	}
	g.forgetMetrics(old, gen)
	if old.accessLog != gen.accessLog {
		g.wg.Go(func() {
			select {
			case <-time.After(timeout):
			case <-g.bg.Done():
			}
			old.accessLog.Close()
		})
	}
}

// forgetMetrics drops the series of listeners and backend servers that old
// had and gen does not.
func (g *Gateway) forgetMetrics(old, gen *generation) {
	listeners := map[string]bool{}
	members := map[[3]string]bool{}
	for _, l := range gen.listeners {
		listeners[l.name] = true
	}
	for _, rb := range gen.backends {
		for _, m := range rb.b.Members {
			members[[3]string{rb.b.Pool, rb.b.Settings.Name, m.Addr}] = true
		}
	}
	for _, l := range old.listeners {
		if !listeners[l.name] {
			l.metrics.Forget()
		}
	}
	for _, rb := range old.backends {
		for _, m := range rb.b.Members {
			if k := [3]string{rb.b.Pool, rb.b.Settings.Name, m.Addr}; !members[k] {
				g.metrics.ForgetBackendMember(k[0], k[1], k[2])
			}
		}
	}
}

// summarize names the listeners gen adds, removes and changes from old.
func summarize(old, gen *generation) *ReloadResult {
	res := &ReloadResult{Generation: gen.number, Added: []string{}, Removed: []string{}, Changed: []string{}}
	before := map[string]string{}
	for _, l := range old.listeners {
		before[l.name] = l.fingerprint(old.cfg)
	}
	for _, l := range gen.listeners {
		fp, ok := before[l.name]
		switch {
		case !ok:
			res.Added = append(res.Added, l.name)
		case fp != l.fingerprint(gen.cfg):
			res.Changed = append(res.Changed, l.name)
		default:
			res.Unchanged++
		}
		delete(before, l.name)
	}
	for _, l := range old.listeners {
		if _, ok := before[l.name]; ok {
			res.Removed = append(res.Removed, l.name)
		}
	}
	return res
}

// fingerprint is what a listener serves as, for telling a changed
// listener from one a reload left alone: its address, host names and TLS
// settings, its certificate slot, and where its rule sends requests.
func (l *listener) fingerprint(cfg *config.Gateway) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %v %v %v %d %p", l.address, l.https, l.hosts, l.requireSNI, l.priority, l.slot)
	if l.https {
		fmt.Fprintf(&b, " %s %v %v", cfg.Policy().Name, cfg.HTTP2(), cfg.SessionResumption())
		data, _ := json.Marshal(cfg.SSLPolicy)
		b.Write(data)
	}
	targets := []*target{l.target}
	if l.paths != nil {
		var patterns []string
		patterns, targets = l.paths.Patterns()
		fmt.Fprintf(&b, " %q", patterns)
	}
	for _, t := range targets {
		fmt.Fprintf(&b, " %s %p", t.name, t.proxy)
		if rd := t.redirect; rd != nil {
			fmt.Fprintf(&b, " %d %s %v %v", rd.status, rd.targetURL, rd.includePath, rd.includeQuery)
			if rd.listener != nil {
				fmt.Fprintf(&b, " %s %s", rd.listener.Name, rd.listener.Address())
			}
		}
	}
	return b.String()
}

// serveReload applies the configuration file again and answers with what
// changed, or 400 with every problem when nothing did.
func (g *Gateway) serveReload(w http.ResponseWriter, r *http.Request) {
	g.log.Info("reload asked for on the admin listener", "client", r.RemoteAddr)
	res, err := g.Reload(r.Context())
	var re *ReloadError
	switch {
	case errors.As(err, &re):
		msgs := make([]string, len(re.Problems))
		for i, p := range re.Problems {
			msgs[i] = p.Error()
		}
		writeJSON(w, http.StatusBadRequest, ReloadFailure{
			Error: "configuration not reloaded; the old one keeps serving", Errors: msgs})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, ReloadFailure{Error: err.Error()})
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

// ReloadFailure is the answer of POST /reload when nothing changed.
type ReloadFailure struct {
	Error  string   `json:"error"`
	Errors []string `json:"errors,omitempty"`
}
