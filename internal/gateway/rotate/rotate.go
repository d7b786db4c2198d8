// Package rotate keeps the gateway's vault certificates current. Each
// certificate has a worker that reads it at start, then again every poll
// interval (jittered by a tenth either way, so that a fleet does not poll
// in step), at once when the vault pushes a change or someone asks, and
// with backoff after a failure. A usable new version is swapped into the
// certificate's slot atomically; anything else leaves the last good one
// serving and puts the certificate in a condition, which is logged once
// per change, shown in status and exported as metrics.
package rotate

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/keygate/keygate/internal/gateway/certcache"
	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/push"
)

// Defaults of Config.
const (
	DefaultMinRetry = time.Second
	DefaultMaxRetry = 5 * time.Minute

	// fetchTimeout bounds one read of the vault, the SDK's own retries of
	// 5xx answers included.
	fetchTimeout = time.Minute

	// heldCheckInterval is the longest a listener certificate goes
	// unread under DisableOnError, so that a refusal stops it within a
	// minute (jitter included) even when nothing is pushed: a revoked
	// access policy or a new firewall rule records no event.
	heldCheckInterval = 50 * time.Second
)

// Certificate is one vault certificate the Manager keeps current.
type Certificate struct {
	// Slot holds it; its Source reads it.
	Slot *certs.Slot

	// Collection is where the configuration declares it:
	// "sslCertificates" or "trustedRootCertificates". With the slot's
	// name it names the certificate in the cache.
	Collection string

	// Listeners are the names of the listeners that serve it, and Hosts
	// their host names, which a new version must cover. Both are empty
	// for a trusted root.
	Listeners []string
	Hosts     []string

	// VaultURL and Secret say which vault events concern it: those of the
	// secret or certificate named Secret (ignoring case) in that vault.
	VaultURL string
	Secret   string
}

// keyPair reports whether the certificate is a listener's.
func (c *Certificate) keyPair() bool { return c.Collection == "sslCertificates" }

// Config configures a Manager.
type Config struct {
	// Logger receives rotations and conditions; nil discards them.
	Logger *slog.Logger

	// Now is the clock validity is judged by; nil means time.Now.
	Now func() time.Time

	// PollInterval is keyVaultPollInterval; required.
	PollInterval time.Duration

	// DisableOnError is onKeyVaultError: DisableListener: a listener
	// certificate the vault refuses access to stops being served until it
	// reads again. Such certificates are read at least every 50 seconds,
	// whatever PollInterval says.
	DisableOnError bool

	// MinRetry and MaxRetry bound the wait after a failed read, doubling
	// from one to the other; never longer than PollInterval. Defaults
	// DefaultMinRetry and DefaultMaxRetry.
	MinRetry, MaxRetry time.Duration

	// Cache, when not nil, receives each installed version and supplies
	// the last good one at start when the vault does not answer.
	Cache *certcache.Cache

	// Events, when not nil, subscribes to each vault's event stream.
	Events *EventOptions
}

// EventOptions say how to follow the vaults' event streams.
type EventOptions struct {
	Credential azcore.TokenCredential
	HTTPClient *http.Client

	// VerifyChallenge reports whether to check a vault's bearer challenge
	// as the SDK does (see keyvault.Clients.VerifyChallenge).
	VerifyChallenge func(vaultURL string) bool
}

// Manager runs a worker per certificate and a subscriber per vault. New
// prepares it, Run runs it; Sync, Refresh, Vaults and Rotations may be
// called from any goroutine once New has returned.
type Manager struct {
	cfg Config
	log *slog.Logger

	// mu guards what follows. Run sets ctx; once Run has seen ctx end,
	// stopped keeps Sync from starting goroutines wg no longer waits for.
	mu      sync.Mutex
	workers []*worker
	subs    map[string]*subscription // by vault URL, lower case
	ctx     context.Context
	stopped bool
	wg      sync.WaitGroup
}

// subscription is a vault's event stream and what stops it.
type subscription struct {
	s      *push.Subscriber
	cancel context.CancelFunc
}

// New returns a Manager for certs. It does no I/O.
func New(cfg Config, certificates []Certificate) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MinRetry <= 0 {
		cfg.MinRetry = DefaultMinRetry
	}
	if cfg.MaxRetry <= 0 {
		cfg.MaxRetry = DefaultMaxRetry
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, subs: map[string]*subscription{}}
	m.Sync(certificates)
	return m
}

// Sync makes certificates the ones the Manager keeps current, as a
// reloaded configuration asks. A certificate whose Slot a worker already
// keeps stays with that worker, and so keeps its loaded version, its
// schedule and its count of rotations; it takes the new Listeners and
// Hosts. A new one gets a worker that reads it at once when the Manager
// runs. Workers of slots no longer listed stop, and so do the event
// streams of vaults no certificate is in any more.
func (m *Manager) Sync(certificates []Certificate) {
	m.mu.Lock()
	defer m.mu.Unlock()

	bySlot := make(map[*certs.Slot]*worker, len(m.workers))
	for _, w := range m.workers {
		bySlot[w.c.Slot] = w
	}
	kept := map[*worker]bool{}
	next := make([]*worker, 0, len(certificates))
	for _, c := range certificates {
		if w, ok := bySlot[c.Slot]; ok && !kept[w] {
			w.setTargets(c.Listeners, c.Hosts)
			kept[w] = true
			next = append(next, w)
			continue
		}
		w := newWorker(m, c)
		next = append(next, w)
		m.startWorker(w)
	}
	for _, w := range m.workers {
		if !kept[w] {
			w.stop()
		}
	}
	m.workers = next
	if m.cfg.Events != nil {
		m.syncSubscriptions()
	}
}

// EnableEvents follows the vaults' event streams with ev from now on,
// when the Manager was made with none (no certificate was in a vault
// then); once set, the options stay. A nil ev changes nothing.
func (m *Manager) EnableEvents(ev *EventOptions) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.Events != nil || ev == nil {
		return
	}
	m.cfg.Events = ev
	m.syncSubscriptions()
}

// startWorker runs w under the Manager's context, once Run has given
// one. Called with mu held.
func (m *Manager) startWorker(w *worker) {
	if m.ctx == nil || m.stopped {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	w.cancel = cancel
	m.wg.Go(func() { w.run(ctx) })
}

// syncSubscriptions makes one subscriber per vault that some certificate
// is in, and stops those of vaults none is in. Called with mu held.
func (m *Manager) syncSubscriptions() {
	wanted := map[string]bool{}
	for _, w := range m.workers {
		key := strings.ToLower(w.c.VaultURL)
		if key == "" {
			continue
		}
		wanted[key] = true
		if _, ok := m.subs[key]; !ok {
			m.subs[key] = &subscription{s: m.subscriber(w.c.VaultURL)}
			m.startSubscription(m.subs[key])
		}
	}
	for key, sub := range m.subs {
		if !wanted[key] {
			if sub.cancel != nil {
				sub.cancel()
			}
			delete(m.subs, key)
		}
	}
}

// subscriber makes the event stream of vaultURL.
func (m *Manager) subscriber(vaultURL string) *push.Subscriber {
	ev := m.cfg.Events
	return push.New(push.Config{
		VaultURL:        vaultURL,
		Credential:      ev.Credential,
		HTTPClient:      ev.HTTPClient,
		VerifyChallenge: ev.VerifyChallenge != nil && ev.VerifyChallenge(vaultURL),
		Logger:          m.log,
		MaxBackoff:      m.cfg.MaxRetry,
		OnEvent:         func(e push.Event) { m.onEvent(vaultURL, e) },
		OnResync:        func() { m.kickVault(vaultURL, "resync") },
		OnDenied:        func(error) { m.kickVault(vaultURL, "event stream refused") },
	})
}

// startSubscription runs sub as startWorker runs a worker. Called with mu
// held.
func (m *Manager) startSubscription(sub *subscription) {
	if m.ctx == nil || m.stopped {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	sub.cancel = cancel
	m.wg.Go(func() { sub.s.Run(ctx) })
}

// Run loads every certificate, then keeps them current until ctx ends. It
// returns once every worker and subscriber has stopped, those Sync
// started included.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	m.ctx = ctx
	for _, w := range m.workers {
		m.startWorker(w)
	}
	for _, sub := range m.subs {
		m.startSubscription(sub)
	}
	m.mu.Unlock()

	<-ctx.Done()
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	m.wg.Wait()
}

// current returns the workers as they are now.
func (m *Manager) current() []*worker {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.workers
}

// onEvent refreshes the certificates an event of vaultURL concerns.
func (m *Manager) onEvent(vaultURL string, e push.Event) {
	for _, w := range m.current() {
		if strings.EqualFold(w.c.VaultURL, vaultURL) && strings.EqualFold(w.c.Secret, e.Name) {
			m.log.Debug("vault event: refreshing", "certificate", w.c.Slot.Name(), "event", e.Type,
				"kind", e.Kind, "version", e.Version, "event_id", e.Sequence)
			w.poke()
		}
	}
}

// kickVault refreshes every certificate of vaultURL.
func (m *Manager) kickVault(vaultURL, why string) {
	m.log.Debug("refreshing every certificate of a vault", "vault", vaultURL, "reason", why)
	for _, w := range m.current() {
		if strings.EqualFold(w.c.VaultURL, vaultURL) {
			w.poke()
		}
	}
}

// ErrUnknown is returned by Refresh for a name no vault certificate has.
var ErrUnknown = errors.New("no certificate of that name is read from a vault")

// Refresh reads the named certificate (every one when name is empty)
// now, and returns the outcome of each read once all are done or ctx
// ends. A certificate declared both as an sslCertificate and as a
// trustedRootCertificate under one name is read as both.
func (m *Manager) Refresh(ctx context.Context, name string) ([]Result, error) {
	var todo []*worker
	for _, w := range m.current() {
		if name == "" || w.c.Slot.Name() == name {
			todo = append(todo, w)
		}
	}
	if len(todo) == 0 && name != "" {
		return nil, ErrUnknown
	}
	results := make([]Result, len(todo))
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	for i, w := range todo {
		wg.Go(func() { results[i], errs[i] = w.refreshNow(ctx) })
	}
	wg.Wait()
	return results, errors.Join(errs...)
}

// VaultState is the event stream of one vault.
type VaultState struct {
	VaultURL string     `json:"vaultUrl"`
	Events   push.State `json:"events"`
}

// Vaults reports the event stream of each vault, when push is on.
func (m *Manager) Vaults() []VaultState {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []VaultState
	for _, w := range m.workers {
		sub, ok := m.subs[strings.ToLower(w.c.VaultURL)]
		if !ok || containsVault(out, w.c.VaultURL) {
			continue
		}
		out = append(out, VaultState{VaultURL: w.c.VaultURL, Events: sub.s.State()})
	}
	return out
}

func containsVault(states []VaultState, vaultURL string) bool {
	for _, s := range states {
		if strings.EqualFold(s.VaultURL, vaultURL) {
			return true
		}
	}
	return false
}

// Rotations returns how many times each certificate has moved to a new
// version since start, by collection and name ("sslCertificates/site").
func (m *Manager) Rotations() map[string]uint64 {
	out := map[string]uint64{}
	for _, w := range m.current() {
		out[w.c.Collection+"/"+w.c.Slot.Name()] = w.rotations.Load()
	}
	return out
}

// jitter spreads d by a tenth either way.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}
