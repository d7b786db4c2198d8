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
func (g *Gateway) buildRotation(gen *generation) error {
	cfg := rotate.Config{
		Logger: g.log, Now: g.opts.Now,
		PollInterval:   gen.cfg.PollInterval(),
		DisableOnError: gen.cfg.DisablesListeners(),
		MaxRetry:       g.opts.MaxRetry,
	}
	if dir := gen.cfg.CertificateCache.Path; dir != "" {
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
	cfg.Events = g.eventOptions(gen)
	g.rotator = rotate.New(cfg, gen.vaultCertificates())
	g.metrics.WatchCertificates(g.certificateSamples, g.vaultSamples)
	return nil
}

// eventOptions say how to follow gen's vaults' event streams; nil when
// no certificate is in a vault or events are off.
func (g *Gateway) eventOptions(gen *generation) *rotate.EventOptions {
	if gen.clients == nil || g.opts.NoEvents {
		return nil
	}
	return &rotate.EventOptions{
		Credential: gen.clients.Credential(), HTTPClient: gen.clients.HTTPClient(),
		VerifyChallenge: gen.clients.VerifyChallenge,
	}
}

// vaultCertificates lists the certificates read from vaults, with the
// listeners that serve each.
func (gen *generation) vaultCertificates() []rotate.Certificate {
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
				c.Listeners, c.Hosts = gen.listenersOf(name)
			}
			out = append(out, c)
		}
	}
	add(collCerts, gen.certSlots)
	add(collRoots, gen.rootSlots)
	return out
}

// listenersOf returns the HTTPS listeners that serve the sslCertificate
// name, and their host names.
func (gen *generation) listenersOf(name string) (listeners, hosts []string) {
	for _, l := range gen.listeners {
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
	gen := g.current()
	var out []metrics.CertificateSample
	add := func(coll string, slots map[string]*certs.Slot) {
		for _, name := range sortedNames(slots) {
			st := slots[name].Status()
			listeners := []string{""}
			if coll == collCerts {
				if ls, _ := gen.listenersOf(name); len(ls) > 0 {
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
	add(collCerts, gen.certSlots)
	add(collRoots, gen.rootSlots)
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
func (gen *generation) certificateStatus(coll string, s *certs.Slot) certs.Status {
	st := s.Status()
	if coll == collCerts {
		st.Listeners, _ = gen.listenersOf(s.Name())
	}
	st.Collection = coll
	return st
}
