package gateway

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/gateway/accesslog"
	"github.com/keygate/keygate/internal/gateway/backend"
	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/config"
	"github.com/keygate/keygate/internal/gateway/keyvault"
	"github.com/keygate/keygate/internal/gateway/metrics"
	"github.com/keygate/keygate/internal/gateway/proxy"
	"github.com/keygate/keygate/internal/gateway/route"
)

// build turns the configuration into the gateway's parts: certificate
// slots, backends, listeners with their routes, and sockets. It reads the
// access log's file and the vault credential's files, and touches no
// network.
func (g *Gateway) build() error {
	g.metrics = metrics.New(g.cfg.Name)

	var err error
	if g.opts.AccessLog != nil {
		g.accessLog = accesslog.New(g.opts.AccessLog)
	} else if g.accessLog, err = accesslog.Open(string(g.cfg.AccessLog.Path)); err != nil {
		return err
	}
	clients, err := g.buildSlots()
	if err != nil {
		return err
	}
	b := &builder{g: g, backends: map[string]*proxy.Proxy{}}
	for i := range g.cfg.HTTPListeners {
		g.listeners = append(g.listeners, b.listener(&g.cfg.HTTPListeners[i]))
	}
	g.buildSockets()
	return g.buildRotation(clients)
}

// buildSlots makes a slot per certificate: inline ones filled at once,
// vault ones with a source that reads them through azsecrets. It returns
// the vault clients, nil when no certificate is in a vault.
func (g *Gateway) buildSlots() (*keyvault.Clients, error) {
	var clients *keyvault.Clients
	if g.cfg.UsesKeyVault() {
		opts := g.cfg.KeyVaultOptions()
		opts.HTTPClient = g.opts.VaultHTTPClient
		var err error
		if clients, err = keyvault.NewClients(opts); err != nil {
			return nil, fmt.Errorf("preparing the vault client: %w", err)
		}
	}
	now := g.opts.Now()

	g.certSlots = map[string]*certs.Slot{}
	for i := range g.cfg.SSLCertificates {
		c := &g.cfg.SSLCertificates[i]
		if m := c.Inline(); m != nil {
			g.certSlots[c.Name] = staticSlot(c.Name, m, now)
			continue
		}
		g.certSlots[c.Name] = certs.NewSlot(c.Name, keyvault.NewSource(clients, c.SecretID(), keyvault.KeyPair))
	}

	g.rootSlots = map[string]*certs.Slot{}
	for i := range g.cfg.TrustedRootCertificates {
		c := &g.cfg.TrustedRootCertificates[i]
		if roots := c.Inline(); roots != nil {
			g.rootSlots[c.Name] = staticSlot(c.Name, &certs.Material{Roots: roots}, now)
			continue
		}
		g.rootSlots[c.Name] = certs.NewSlot(c.Name, keyvault.NewSource(clients, c.SecretID(), keyvault.Roots))
	}
	return clients, nil
}

// staticSlot is the slot of inline data: filled, and never refreshed.
func staticSlot(name string, m *certs.Material, now time.Time) *certs.Slot {
	s := certs.NewSlot(name, certs.Static{M: m})
	s.Install(m, now, false)
	s.Record(now, nil)
	return s
}

// builder resolves routing rules into targets, making one backend (and
// proxy) per pair of pool and settings that some rule uses.
type builder struct {
	g        *Gateway
	backends map[string]*proxy.Proxy
}

func (b *builder) listener(c *config.HTTPListener) *listener {
	g := b.g
	l := &listener{
		g:          g,
		name:       c.Name,
		https:      c.Protocol == config.ProtocolHTTPS,
		hosts:      c.Hosts(),
		requireSNI: c.RequireServerNameIndication,
		address:    c.Address(),
		metrics:    g.metrics.Listener(c.Name),
	}
	if l.https {
		l.slot = g.certSlots[string(c.SSLCertificate)]
	}

	rule := b.ruleFor(c.Name)
	l.priority = rule.Priority
	switch rule.RuleType {
	case config.RulePathBasedRouting:
		pm := b.pathMap(string(rule.URLPathMap))
		l.paths = &pm
	default:
		l.target = b.target(rule.Name, rule.BackendAddressPool, rule.BackendHTTPSettings, rule.RedirectConfiguration)
	}
	return l
}

func (b *builder) ruleFor(listener string) *config.RequestRoutingRule {
	for i := range b.g.cfg.RequestRoutingRules {
		if r := &b.g.cfg.RequestRoutingRules[i]; string(r.HTTPListener) == listener {
			return r
		}
	}
	// Validation guarantees a rule for every listener.
	panic("gateway: no rule for listener " + listener)
}

func (b *builder) pathMap(name string) route.PathMap[*target] {
	var pm route.PathMap[*target]
	for i := range b.g.cfg.URLPathMaps {
		m := &b.g.cfg.URLPathMaps[i]
		if m.Name != name {
			continue
		}
		pm.Default = b.target(m.Name, m.DefaultBackendAddressPool, m.DefaultBackendHTTPSettings, m.DefaultRedirectConfiguration)
		for _, r := range m.PathRules {
			pm.Add(r.Paths, b.target(m.Name+"/"+r.Name, r.BackendAddressPool, r.BackendHTTPSettings, r.RedirectConfiguration))
		}
	}
	return pm
}

func (b *builder) target(name string, pool, settings, redirect config.Ref) *target {
	if redirect != "" {
		return &target{name: name, redirect: b.redirect(string(redirect))}
	}
	return &target{name: name, proxy: b.proxy(string(pool), string(settings))}
}

func (b *builder) redirect(name string) *redirect {
	for _, r := range b.g.cfg.RedirectConfigurations {
		if r.Name != name {
			continue
		}
		rd := &redirect{status: redirectStatus[r.RedirectType], targetURL: r.TargetURL,
			includePath: r.IncludePath, includeQuery: r.IncludeQueryString}
		if r.TargetListener != "" {
			rd.listener = b.listenerConfig(string(r.TargetListener))
		}
		return rd
	}
	panic("gateway: no redirect " + name)
}

func (b *builder) listenerConfig(name string) *config.HTTPListener {
	for i := range b.g.cfg.HTTPListeners {
		if l := &b.g.cfg.HTTPListeners[i]; l.Name == name {
			return l
		}
	}
	panic("gateway: no listener " + name)
}

// proxy returns the proxy to pool through settings, making it the first
// time.
func (b *builder) proxy(pool, settings string) *proxy.Proxy {
	key := pool + "\x00" + settings
	if p, ok := b.backends[key]; ok {
		return p
	}
	g := b.g
	var hosts []string
	for _, p := range g.cfg.BackendAddressPools {
		if p.Name == pool {
			for _, a := range p.BackendAddresses {
				hosts = append(hosts, a.Host())
			}
		}
	}
	be := backend.New(pool, hosts, b.settings(settings), backend.Options{
		Logger: g.log, Now: g.opts.Now,
		OnHealth: func(be *backend.Backend, m *backend.Member, healthy bool) {
			g.metrics.BackendHealth(be.Pool, be.Settings.Name, m.Addr, healthy)
		},
	})
	for _, m := range be.Members {
		g.metrics.BackendHealth(pool, settings, m.Addr, true)
	}
	g.backends = append(g.backends, be)
	p := proxy.New(be, g.log)
	b.backends[key] = p
	return p
}

func (b *builder) settings(name string) *backend.Settings {
	for _, s := range b.g.cfg.BackendHTTPSettingsCollection {
		if s.Name != name {
			continue
		}
		out := &backend.Settings{
			Name: s.Name, HTTPS: s.Protocol == config.ProtocolHTTPS, Port: s.Port,
			HostName: s.HostName, PickHostName: s.PickHostNameFromBackendAddress,
			RequestTimeout: time.Duration(s.RequestTimeout) * time.Second,
			Affinity:       s.CookieBasedAffinity == config.AffinityEnabled,
			CookieName:     s.AffinityCookieName,
		}
		if d := s.ConnectionDraining; d != nil && d.Enabled {
			out.Drain = time.Duration(d.DrainTimeoutInSec) * time.Second
		}
		for _, r := range s.TrustedRootCertificates {
			out.Roots = append(out.Roots, b.g.rootSlots[string(r)])
		}
		if s.Probe != "" && (s.ProbeEnabled == nil || *s.ProbeEnabled) {
			out.Probe = b.probe(string(s.Probe))
		}
		return out
	}
	panic("gateway: no settings " + name)
}

func (b *builder) probe(name string) *backend.Probe {
	for _, p := range b.g.cfg.Probes {
		if p.Name != name {
			continue
		}
		out := &backend.Probe{
			Name: p.Name, HTTPS: p.Protocol == config.ProtocolHTTPS, Host: p.Host, Path: p.Path, Port: p.Port,
			Interval:           time.Duration(p.Interval) * time.Second,
			Timeout:            time.Duration(p.Timeout) * time.Second,
			UnhealthyThreshold: p.UnhealthyThreshold,
			StatusCodes:        [][2]int{{200, 399}},
		}
		if p.Match != nil {
			out.Body = p.Match.Body
			if len(p.Match.StatusCodes) > 0 {
				out.StatusCodes = parseRanges(p.Match.StatusCodes)
			}
		}
		return out
	}
	panic("gateway: no probe " + name)
}

// parseRanges reads "200" and "200-399", which validation has checked.
func parseRanges(codes []string) [][2]int {
	var out [][2]int
	for _, c := range codes {
		lo, hi, ok := strings.Cut(c, "-")
		if !ok {
			hi = lo
		}
		a, _ := strconv.Atoi(lo)
		z, _ := strconv.Atoi(hi)
		out = append(out, [2]int{a, z})
	}
	return out
}

// buildSockets groups listeners by the address they bind, in file order.
func (g *Gateway) buildSockets() {
	byAddr := map[string]*socket{}
	for _, l := range g.listeners {
		s, ok := byAddr[l.address]
		if !ok {
			s = &socket{g: g, addr: l.address, https: l.https}
			byAddr[l.address] = s
			g.sockets = append(g.sockets, s)
		}
		s.listeners = append(s.listeners, l)
		l.socket = s
	}
	for _, s := range g.sockets {
		s.init()
	}
}
