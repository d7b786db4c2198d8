package gateway

import (
	"errors"
	"fmt"
	"sort"

	"github.com/keygate/keygate/internal/gateway/certcache"
	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/keyvault"
	"github.com/keygate/keygate/internal/gateway/metrics"
	"github.com/keygate/keygate/internal/gateway/rotate"
)

// Collections of certificates, as the configuration names them.
const (
	collCerts = "sslCertificates"
	collRoots = "trustedRootCertificates"
)

// buildRotation prepares what keeps vault certificates current: the
// rotation manager with its cache and event subscriptions, and the
// certificate metrics. It opens the cache folder and does no network I/O.
func (g *Gateway) buildRotation(clients *keyvault.Clients) error {
	cfg := rotate.Config{
		Logger: g.log, Now: g.opts.Now,
		PollInterval:   g.cfg.PollInterval(),
		DisableOnError: g.cfg.DisablesListeners(),
		MaxRetry:       g.opts.MaxRetry,
	}
	if dir := g.cfg.CertificateCache.Path; dir != "" {
		if g.opts.CacheKey.ID() == "" {
			return errors.New("certificateCache.path is set but no cache key was given: " +
				"give one with --cache-key-file or the environment variable KEYGATE_GATEWAY_CACHE_KEY")
		}
		c, err := certcache.Open(dir, g.opts.CacheKey)
		if err != nil {
			return fmt.Errorf("certificateCache.path: %w", err)
		}
		cfg.Cache = c
	}
	if clients != nil && !g.opts.NoEvents {
		cfg.Events = &rotate.EventOptions{
			Credential: clients.Credential(), HTTPClient: clients.HTTPClient(),
			VerifyChallenge: clients.VerifyChallenge,
		}
	}
	g.rotator = rotate.New(cfg, g.vaultCertificates())
	g.metrics.WatchCertificates(g.certificateSamples, g.vaultSamples)
	return nil
}

// vaultCertificates lists the certificates read from vaults, with the
// listeners that serve each.
func (g *Gateway) vaultCertificates() []rotate.Certificate {
	var out []rotate.Certificate
	add := func(coll string, slots map[string]*certs.Slot) {
		for _, name := range sortedNames(slots) {
			src, ok := slots[name].Source().(*keyvault.Source)
			if !ok {
				continue
			}
			c := rotate.Certificate{Slot: slots[name], Collection: coll,
				VaultURL: src.ID().VaultURL, Secret: src.ID().Name}
			if coll == collCerts {
				c.Listeners, c.Hosts = g.listenersOf(name)
			}
			out = append(out, c)
		}
	}
	add(collCerts, g.certSlots)
	add(collRoots, g.rootSlots)
	return out
}

// listenersOf returns the HTTPS listeners that serve the sslCertificate
// name, and their host names.
func (g *Gateway) listenersOf(name string) (listeners, hosts []string) {
	for _, l := range g.listeners {
		if l.https && l.slot.Name() == name {
			listeners = append(listeners, l.name)
			hosts = append(hosts, l.hosts...)
		}
	}
	return listeners, hosts
}

func sortedNames(slots map[string]*certs.Slot) []string {
	names := make([]string, 0, len(slots))
	for n := range slots {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// certificateSamples are the certificate metrics: one sample per
// certificate and listener serving it; one with no listener for a
// certificate no listener serves, such as a trusted root.
func (g *Gateway) certificateSamples() []metrics.CertificateSample {
	rotations := g.rotator.Rotations()
	var out []metrics.CertificateSample
	add := func(coll string, slots map[string]*certs.Slot) {
		for _, name := range sortedNames(slots) {
			st := slots[name].Status()
			listeners := []string{""}
			if coll == collCerts {
				if ls, _ := g.listenersOf(name); len(ls) > 0 {
					listeners = ls
				}
			}
			for _, l := range listeners {
				out = append(out, metrics.CertificateSample{
					Listener: l, Certificate: name, NotAfter: st.NotAfter, LastRefresh: st.LastRefresh,
					Condition: string(st.Condition), Serving: st.Serving,
					Rotations: rotations[coll+"/"+name],
				})
			}
		}
	}
	add(collCerts, g.certSlots)
	add(collRoots, g.rootSlots)
	return out
}

func (g *Gateway) vaultSamples() []metrics.VaultSample {
	var out []metrics.VaultSample
	for _, v := range g.rotator.Vaults() {
		out = append(out, metrics.VaultSample{VaultURL: v.VaultURL, Connected: v.Events.Connected})
	}
	return out
}

// certificateStatus is a slot's status with the listeners that serve it.
func (g *Gateway) certificateStatus(coll string, s *certs.Slot) certs.Status {
	st := s.Status()
	if coll == collCerts {
		st.Listeners, _ = g.listenersOf(s.Name())
	}
	st.Collection = coll
	return st
}
