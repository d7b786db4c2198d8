package rotate

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/gateway/certcache"
	"github.com/keygate/keygate/internal/gateway/certs"
)

// Result is the outcome of one read of a certificate.
type Result struct {
	Certificate string   `json:"certificate"`
	Collection  string   `json:"collection"`
	Listeners   []string `json:"listeners,omitempty"`

	// Version and Serial are of the version in use after the read;
	// Changed says the read installed it.
	Version string `json:"version,omitempty"`
	Serial  string `json:"serial,omitempty"`
	Changed bool   `json:"changed"`

	// Serving is false while the certificate is held back
	// (onKeyVaultError: DisableListener) or has never loaded.
	Serving bool `json:"serving"`

	Condition certs.Code `json:"condition"`
	Error     string     `json:"error,omitempty"`
}

// request asks a worker to read its certificate now; done, when not nil,
// receives the outcome.
type request struct {
	done chan Result
}

// worker keeps one certificate current. Only its goroutine reads the
// vault for it, so reads of one certificate never overlap.
type worker struct {
	m         *Manager
	c         Certificate
	kick      chan request
	rotations atomic.Uint64

	// targets are c's Listeners and Hosts, which a reload may change
	// while the worker runs; c's other fields never change.
	targets atomic.Pointer[targets]

	// cancel stops the worker's goroutine (nil until it starts); removed
	// is closed once a reload has dropped the certificate. Both are the
	// Manager's, under its mutex.
	cancel  context.CancelFunc
	removed chan struct{}
}

// targets are who serves a certificate: listener names and host names.
type targets struct {
	listeners, hosts []string
}

func newWorker(m *Manager, c Certificate) *worker {
	w := &worker{m: m, c: c, kick: make(chan request, 1), removed: make(chan struct{})}
	w.setTargets(c.Listeners, c.Hosts)
	return w
}

func (w *worker) setTargets(listeners, hosts []string) {
	w.targets.Store(&targets{listeners: listeners, hosts: hosts})
}

func (w *worker) listeners() []string { return w.targets.Load().listeners }
func (w *worker) hosts() []string     { return w.targets.Load().hosts }

// stop ends the worker for good. Called with the Manager's mutex held.
func (w *worker) stop() {
	if w.cancel != nil {
		w.cancel()
	}
	close(w.removed)
}

// errRemoved is what a refresh of a certificate a reload dropped gets.
var errRemoved = errors.New("the certificate is no longer in the configuration")

// run reads at once, then on every timer or request until ctx ends.
func (w *worker) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		var done chan Result
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case r := <-w.kick:
			done = r.done
		}

		res := w.refresh(ctx)
		if done != nil {
			done <- res
		}

		// Next: a poll interval after a good read; after a failure, a
		// doubling wait that the poll interval caps.
		next := w.interval()
		if res.Condition == certs.OK {
			failures = 0
		} else {
			next = min(w.m.cfg.MinRetry<<min(failures, 30), w.m.cfg.MaxRetry, next)
			failures++
		}
		timer.Reset(jitter(next))
	}
}

// interval is how long the worker waits after a good read.
func (w *worker) interval() time.Duration {
	if w.m.cfg.DisableOnError && w.c.keyPair() {
		return min(w.m.cfg.PollInterval, heldCheckInterval)
	}
	return w.m.cfg.PollInterval
}

// poke asks for a read without waiting for it. A read already asked for
// and not yet begun covers this one too.
func (w *worker) poke() {
	select {
	case w.kick <- request{}:
	default:
	}
}

// refreshNow asks for a read and waits for its outcome.
func (w *worker) refreshNow(ctx context.Context) (Result, error) {
	done := make(chan Result, 1)
	select {
	case w.kick <- request{done: done}:
	case <-w.removed:
		return Result{}, fmt.Errorf("refreshing %s: %w", w.c.Slot.Name(), errRemoved)
	case <-ctx.Done():
		return Result{}, fmt.Errorf("refreshing %s: %w", w.c.Slot.Name(), ctx.Err())
	}
	select {
	case res := <-done:
		return res, nil
	case <-w.removed:
		return Result{}, fmt.Errorf("refreshing %s: %w", w.c.Slot.Name(), errRemoved)
	case <-ctx.Done():
		return Result{}, fmt.Errorf("refreshing %s: %w", w.c.Slot.Name(), ctx.Err())
	}
}

// refresh reads the certificate once and acts on what it got.
func (w *worker) refresh(ctx context.Context) Result {
	s := w.c.Slot
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	m, err := s.Source().Fetch(fctx)
	cancel()
	now := w.m.cfg.Now()
	if err == nil && w.c.keyPair() {
		err = certs.Check(m, now, w.hosts())
	}

	prev := s.Current()
	changed := false
	if err != nil {
		err = w.failed(err, now)
	} else {
		changed = w.succeeded(prev, m, now)
	}
	return w.result(changed, err)
}

// succeeded installs m when it is another version than prev, resumes a
// held certificate, and records the read. It reports whether m was
// installed.
func (w *worker) succeeded(prev, m *certs.Material, now time.Time) bool {
	s := w.c.Slot
	before := s.Record(now, nil)
	changed := prev == nil || prev.Version != m.Version || prev.Thumbprint() != m.Thumbprint()
	if changed {
		s.Install(m, now, false)
		w.logInstalled(prev, m)
		w.store(m, now)
	}
	if s.Hold(false) {
		w.m.log.Info("certificate served again: it reads from the vault again", w.attrs()...)
	}
	if before != "" && before != certs.OK {
		w.m.log.Info("certificate condition cleared", append(w.attrs(), "was", string(before))...)
	}
	return changed
}

func (w *worker) logInstalled(prev, m *certs.Material) {
	if prev == nil {
		w.m.log.Info("certificate loaded", append(w.attrs(), "version", m.Version, "serial", m.Serial(),
			"thumbprint", m.Thumbprint(), "not_after", m.NotAfter())...)
		return
	}
	w.rotations.Add(1)
	w.m.log.Info("certificate rotated", append(w.attrs(),
		"from_version", prev.Version, "to_version", m.Version,
		"from_serial", prev.Serial(), "to_serial", m.Serial(),
		"thumbprint", m.Thumbprint(), "not_after", m.NotAfter())...)
}

// store writes m to the cache, if there is one. A failure only costs the
// cache's help at a later start, so it is logged and nothing more.
func (w *worker) store(m *certs.Material, now time.Time) {
	c := w.m.cfg.Cache
	if c == nil {
		return
	}
	if err := c.Store(w.cacheName(), w.c.Slot.Source().Describe(), m, now); err != nil {
		w.m.log.Warn("certificate not cached", append(w.attrs(), "error", err)...)
	}
}

// failed records a failed read: with nothing loaded yet it tries the
// cache, under DisableListener it holds back a certificate the vault
// refuses, and it logs a change of condition. It returns err, with what
// the listener is left with when nothing is loaded.
func (w *worker) failed(err error, now time.Time) error {
	s := w.c.Slot
	code := certs.CodeOf(err)
	if s.Current() == nil {
		note := w.fromCache(code, now)
		err = &certs.Error{Code: code, Err: fmt.Errorf("%w; %s", err, note)}
	}
	hold := code.Access() && w.m.cfg.DisableOnError && w.c.keyPair()
	held := hold && s.Hold(true)

	before := s.Record(now, err)
	if before == code && !held {
		return err
	}
	attrs := append(w.attrs(), "condition", string(code), "error", err.Error())
	switch cur := s.Current(); {
	case held:
		w.m.log.Warn("certificate no longer served (onKeyVaultError: DisableListener)", attrs...)
	case cur == nil:
		w.m.log.Warn("certificate not loaded", attrs...)
	case !s.Serving():
		w.m.log.Warn("certificate not refreshed; still not served (onKeyVaultError: DisableListener)", attrs...)
	default:
		w.m.log.Warn("certificate not refreshed; serving the last good version", append(attrs, "version", cur.Version)...)
	}
	return err
}

// fromCache installs the cached copy of a certificate that has never
// loaded, when the vault could not be reached (or, under KeepLastGood,
// refused it). It returns what the listener is left with, for the
// condition's message.
func (w *worker) fromCache(code certs.Code, now time.Time) string {
	c := w.m.cfg.Cache
	switch {
	case c == nil:
		return "nothing to serve until it reads: the certificate cache is off (certificateCache.path)"
	case !code.Transient() && !(code.Access() && !w.m.cfg.DisableOnError):
		return "nothing to serve until it reads"
	}
	m, stored, err := c.Load(w.cacheName(), w.c.Slot.Source().Describe())
	if errors.Is(err, certcache.ErrMiss) {
		return "nothing to serve until it reads: the certificate cache holds no copy"
	}
	if err != nil {
		w.m.log.Warn("cached certificate not used", append(w.attrs(), "error", err)...)
		return "nothing to serve until it reads: " + err.Error()
	}
	if w.c.keyPair() {
		if err := certs.Check(m, now, w.hosts()); err != nil {
			return "nothing to serve until it reads: the cached copy cannot be served: " + err.Error()
		}
	}
	w.c.Slot.Install(m, now, true)
	w.m.log.Info("certificate loaded from the cache", append(w.attrs(), "version", m.Version,
		"serial", m.Serial(), "not_after", m.NotAfter(), "cached_at", stored)...)
	return "serving the cached copy of version " + m.Version + " stored " + stored.Format(time.RFC3339)
}

func (w *worker) result(changed bool, err error) Result {
	s := w.c.Slot
	res := Result{
		Certificate: s.Name(), Collection: w.c.Collection, Listeners: w.listeners(),
		Changed: changed, Serving: s.Serving(), Condition: certs.CodeOf(err),
	}
	if err != nil {
		res.Error = err.Error()
	}
	if m := s.Current(); m != nil {
		res.Version, res.Serial = m.Version, m.Serial()
	}
	return res
}

func (w *worker) cacheName() string { return w.c.Collection + "/" + w.c.Slot.Name() }

// attrs are the log attributes that name the certificate.
func (w *worker) attrs() []any {
	out := []any{"certificate", w.c.Slot.Name(), "source", w.c.Slot.Source().Describe()}
	if ls := w.listeners(); len(ls) > 0 {
		out = append(out, "listeners", ls)
	}
	if w.c.Collection != "sslCertificates" {
		out = append(out, "collection", w.c.Collection)
	}
	return out
}
