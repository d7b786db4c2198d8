package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/gateway/accesslog"
	"github.com/keygate/keygate/internal/gateway/backend"
	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/config"
	"github.com/keygate/keygate/internal/gateway/keyvault"
	"github.com/keygate/keygate/internal/gateway/proxy"
	"github.com/keygate/keygate/internal/gateway/route"
)

// generation is one configuration as the gateway serves it, built at
// start or by a reload and replaced whole by the next reload. Nothing in
// it changes once it is built, except what its parts (slots, backends)
// change in themselves.
type generation struct {
	cfg    *config.Gateway
	number uint64
	loaded time.Time

	clients   *keyvault.Clients
	accessLog *accesslog.Log
	certSlots map[string]*certs.Slot
	rootSlots map[string]*certs.Slot
	listeners []*listener

	// backends are by fingerprint: what makes one backend differ from
	// another (see builder.proxy), so that a reload keeps those whose
	// fingerprint stays.
	backends map[string]*runningBackend
	ordered  []*runningBackend // the same, in the order rules use them

	// states are the sockets' routing, by bound address, in file order.
	addrs  []string
	states map[string]*socketState
}

// runningBackend is a backend with its proxy and what stops its probes.
type runningBackend struct {
	b      *backend.Backend
	p      *proxy.Proxy
	cancel context.CancelFunc
}

// newGeneration turns cfg into the gateway's parts: certificate slots,
// backends, listeners with their routes, and the sockets' routing. With
// prev (a reload), certificates and backends whose configuration did not
// change are prev's own, loaded material and probe state included. It
// reads the access log's file and the vault credential's files, and
// touches no network. On error, what it opened is closed.
func (g *Gateway) newGeneration(cfg *config.Gateway, prev *generation) (*generation, error) {
	gen := &generation{cfg: cfg, loaded: g.opts.Now(), backends: map[string]*runningBackend{},
		states: map[string]*socketState{}}
	if prev != nil {
		gen.number = prev.number
	}
	gen.number++

	var err error
	if gen.accessLog, err = g.openAccessLog(cfg, prev); err != nil {
		return nil, err
	}
	if err := g.buildSlots(gen, prev); err != nil {
		gen.closeAccessLog(prev)
		return nil, err
	}
	b := &builder{g: g, gen: gen, prev: prev, proxies: map[string]*proxy.Proxy{}}
	for i := range cfg.HTTPListeners {
		gen.listeners = append(gen.listeners, b.listener(&cfg.HTTPListeners[i]))
	}
	gen.buildStates()
	return gen, nil
}

// openAccessLog opens the access log the configuration names, or keeps
// prev's when the place is the same.
func (g *Gateway) openAccessLog(cfg *config.Gateway, prev *generation) (*accesslog.Log, error) {
	switch {
	case g.opts.AccessLog != nil && prev != nil:
		return prev.accessLog, nil
	case g.opts.AccessLog != nil:
		return accesslog.New(g.opts.AccessLog), nil
	case prev != nil && prev.cfg.AccessLog.Path == cfg.AccessLog.Path:
		return prev.accessLog, nil
	}
	return accesslog.Open(string(cfg.AccessLog.Path))
}

// closeAccessLog closes gen's access log unless prev shares it: for a
// generation that is given up before it serves.
func (gen *generation) closeAccessLog(prev *generation) {
	if prev == nil || prev.accessLog != gen.accessLog {
		gen.accessLog.Close()
	}
}

// buildSlots makes a slot per certificate: inline ones filled at once,
// vault ones with a source that reads them through azsecrets. A
// certificate declared as prev declared it keeps prev's slot.
func (g *Gateway) buildSlots(gen *generation, prev *generation) error {
	cfg := gen.cfg
	if cfg.UsesKeyVault() {
		if err := g.buildClients(gen, prev); err != nil {
			return err
		}
	}
	now := g.opts.Now()

	gen.certSlots = map[string]*certs.Slot{}
	for i := range cfg.SSLCertificates {
		c := &cfg.SSLCertificates[i]
		switch old := prevCert(prev, c); {
		case old != nil:
			gen.certSlots[c.Name] = old
		case c.Inline() != nil:
			gen.certSlots[c.Name] = staticSlot(c.Name, c.Inline(), now)
		default:
			gen.certSlots[c.Name] = certs.NewSlot(c.Name,
				keyvault.NewSource(gen.clients, c.SecretID(), keyvault.KeyPair))
		}
	}

	gen.rootSlots = map[string]*certs.Slot{}
	for i := range cfg.TrustedRootCertificates {
		c := &cfg.TrustedRootCertificates[i]
		switch old := prevRoot(prev, c); {
		case old != nil:
			gen.rootSlots[c.Name] = old
		case c.Inline() != nil:
			gen.rootSlots[c.Name] = staticSlot(c.Name, &certs.Material{Roots: c.Inline()}, now)
		default:
			gen.rootSlots[c.Name] = certs.NewSlot(c.Name,
				keyvault.NewSource(gen.clients, c.SecretID(), keyvault.Roots))
		}
	}
	return nil
}

// buildClients prepares the vault clients, or keeps prev's: a reload
// cannot change how the vaults are reached (see fixedSettings).
func (g *Gateway) buildClients(gen, prev *generation) error {
	if prev != nil && prev.clients != nil {
		gen.clients = prev.clients
		return nil
	}
	opts := gen.cfg.KeyVaultOptions()
	opts.HTTPClient = g.opts.VaultHTTPClient
	clients, err := keyvault.NewClients(opts)
	if err != nil {
		return fmt.Errorf("preparing the vault client: %w", err)
	}
	gen.clients = clients
	return nil
}

// prevCert returns prev's slot for c when prev declared c the same way:
// the same name and the same vault reference or inline data.
func prevCert(prev *generation, c *config.SSLCertificate) *certs.Slot {
	if prev == nil {
		return nil
	}
	for _, o := range prev.cfg.SSLCertificates {
		if o.Name == c.Name && o.KeyVaultSecretID == c.KeyVaultSecretID &&
			o.Data == c.Data && o.Password == c.Password {
			return prev.certSlots[c.Name]
		}
	}
	return nil
}

// prevRoot is prevCert for a trusted root.
func prevRoot(prev *generation, c *config.TrustedRootCertificate) *certs.Slot {
	if prev == nil {
		return nil
	}
	for _, o := range prev.cfg.TrustedRootCertificates {
		if o.Name == c.Name && o.KeyVaultSecretID == c.KeyVaultSecretID && o.Data == c.Data {
			return prev.rootSlots[c.Name]
		}
	}
	return nil
}

// staticSlot is the slot of inline data: filled, and never refreshed.
func staticSlot(name string, m *certs.Material, now time.Time) *certs.Slot {
	s := certs.NewSlot(name, certs.Static{M: m})
	s.Install(m, now, false)
	s.Record(now, nil)
	return s
}

// builder resolves routing rules into targets, making one backend (and
// proxy) per pair of pool and settings that some rule uses, or taking
// prev's when nothing about it changed.
type builder struct {
	g       *Gateway
	gen     *generation
	prev    *generation
	proxies map[string]*proxy.Proxy // by pool and settings names
}

func (b *builder) listener(c *config.HTTPListener) *listener {
	g, cfg := b.g, b.gen.cfg
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
		l.slot = b.gen.certSlots[string(c.SSLCertificate)]
		l.tlsConfig = l.newTLSConfig(cfg.Policy(), cfg.HTTP2())
		l.tlsConfig.SessionTicketsDisabled = !cfg.SessionResumption()
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
	for i := range b.gen.cfg.RequestRoutingRules {
		if r := &b.gen.cfg.RequestRoutingRules[i]; string(r.HTTPListener) == listener {
			return r
		}
	}
	// Validation guarantees a rule for every listener.
	panic("gateway: no rule for listener " + listener)
}

func (b *builder) pathMap(name string) route.PathMap[*target] {
	var pm route.PathMap[*target]
	for i := range b.gen.cfg.URLPathMaps {
		m := &b.gen.cfg.URLPathMaps[i]
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
	for _, r := range b.gen.cfg.RedirectConfigurations {
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
	for i := range b.gen.cfg.HTTPListeners {
		if l := &b.gen.cfg.HTTPListeners[i]; l.Name == name {
			return l
		}
	}
	panic("gateway: no listener " + name)
}

// proxy returns the proxy to pool through settings: prev's when the
// pool, the settings, their probe and trusted roots are as prev had them,
// else a new one, made the first time a rule asks.
func (b *builder) proxy(pool, settings string) *proxy.Proxy {
	key := pool + "\x00" + settings
	if p, ok := b.proxies[key]; ok {
		return p
	}
	g, gen := b.g, b.gen
	s := b.settings(settings)
	fp := b.fingerprint(pool, settings, s)
	if b.prev != nil {
		if rb, ok := b.prev.backends[fp]; ok {
			gen.backends[fp] = rb
			gen.ordered = append(gen.ordered, rb)
			b.proxies[key] = rb.p
			return rb.p
		}
	}

	var hosts []string
	for _, p := range gen.cfg.BackendAddressPools {
		if p.Name == pool {
			for _, a := range p.BackendAddresses {
				hosts = append(hosts, a.Host())
			}
		}
	}
	be := backend.New(pool, hosts, s, backend.Options{
		Logger: g.log, Now: g.opts.Now,
		OnHealth: func(be *backend.Backend, m *backend.Member, healthy bool) {
			g.metrics.BackendHealth(be.Pool, be.Settings.Name, m.Addr, healthy)
		},
	})
	rb := &runningBackend{b: be, p: proxy.New(be, g.log)}
	gen.backends[fp] = rb
	gen.ordered = append(gen.ordered, rb)
	b.proxies[key] = rb.p
	return rb.p
}

// fingerprint is what a backend is made from: the pool's, the settings'
// and the probe's configuration, and the slots of the trusted roots (a
// root whose reference changed has a new slot).
func (b *builder) fingerprint(pool, settings string, s *backend.Settings) string {
	cfg := b.gen.cfg
	var parts []any
	for _, p := range cfg.BackendAddressPools {
		if p.Name == pool {
			parts = append(parts, p)
		}
	}
	for _, hs := range cfg.BackendHTTPSettingsCollection {
		if hs.Name == settings {
			parts = append(parts, hs)
		}
	}
	if s.Probe != nil {
		for _, p := range cfg.Probes {
			if p.Name == s.Probe.Name {
				parts = append(parts, p)
			}
		}
	}
	for _, r := range s.Roots {
		parts = append(parts, fmt.Sprintf("%p", r))
	}
	// The configuration's types are plain data: marshaling cannot fail.
	data, _ := json.Marshal(parts)
	return pool + "\x00" + settings + "\x00" + string(data)
}

func (b *builder) settings(name string) *backend.Settings {
	for _, s := range b.gen.cfg.BackendHTTPSettingsCollection {
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
			out.Roots = append(out.Roots, b.gen.rootSlots[string(r)])
		}
		if s.Probe != "" && (s.ProbeEnabled == nil || *s.ProbeEnabled) {
			out.Probe = b.probe(string(s.Probe))
		}
		return out
	}
	panic("gateway: no settings " + name)
}

func (b *builder) probe(name string) *backend.Probe {
	for _, p := range b.gen.cfg.Probes {
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

// buildStates groups listeners by the address they bind, in file order,
// into the routing of each socket.
func (gen *generation) buildStates() {
	byAddr := map[string][]*listener{}
	for _, l := range gen.listeners {
		if _, ok := byAddr[l.address]; !ok {
			gen.addrs = append(gen.addrs, l.address)
		}
		byAddr[l.address] = append(byAddr[l.address], l)
	}
	for _, addr := range gen.addrs {
		gen.states[addr] = newSocketState(byAddr[addr], gen.accessLog)
	}
}
