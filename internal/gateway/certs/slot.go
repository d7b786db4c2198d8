package certs

import (
	"context"
	"crypto/tls"
	"sync"
	"sync/atomic"
	"time"
)

// Source fetches the current material of one certificate.
type Source interface {
	// Fetch returns the certificate as its origin has it now. Errors name
	// the certificate's origin and never hold secret material.
	Fetch(ctx context.Context) (*Material, error)

	// Describe names the origin for logs and status: "inline", or the
	// vault secret's URL as configured.
	Describe() string
}

// Static is a Source whose material never changes: inline data, decoded
// once when the configuration is loaded.
type Static struct{ M *Material }

// Fetch returns the material.
func (s Static) Fetch(context.Context) (*Material, error) { return s.M, nil }

// Describe says "inline".
func (Static) Describe() string { return "inline" }

// Status is what a Slot reports about its certificate. It holds no
// secret material.
type Status struct {
	Name   string `json:"name"`
	Source string `json:"source"`

	// Collection and Listeners are filled in by the gateway: where the
	// configuration declares the certificate, and which listeners serve
	// it.
	Collection string   `json:"collection,omitempty"`
	Listeners  []string `json:"listeners,omitempty"`

	// Ready: the slot holds a certificate. Serving: handshakes get it;
	// false while onKeyVaultError: DisableListener holds it back.
	Ready   bool `json:"ready"`
	Serving bool `json:"serving"`

	// The version in use.
	Version    string    `json:"version,omitempty"`
	Serial     string    `json:"serial,omitempty"`
	Thumbprint string    `json:"thumbprint,omitempty"`
	NotAfter   time.Time `json:"notAfter,omitzero"`

	// FromCache: the version in use came from the local cache, the vault
	// not having answered since the gateway started.
	FromCache bool `json:"fromCache,omitempty"`

	// LoadedAt is when the version in use was installed; LastRefresh when
	// the source last answered with a usable certificate; LastAttempt when
	// it was last asked.
	LoadedAt    time.Time `json:"loadedAt,omitzero"`
	LastRefresh time.Time `json:"lastRefresh,omitzero"`
	LastAttempt time.Time `json:"lastAttempt,omitzero"`

	// Condition is the outcome of the last attempt (empty before the
	// first), and LastError what went wrong, if anything.
	Condition Code   `json:"condition,omitempty"`
	LastError string `json:"lastError,omitempty"`
}

// Slot holds the certificate of one sslCertificate or
// trustedRootCertificate. Handshakes read it with KeyPair, without a
// lock; Install replaces it atomically, so a handshake sees the old
// material or the new, and connections already open keep the one they
// started with. A Slot is safe for concurrent use.
type Slot struct {
	name   string
	source Source
	cur    atomic.Pointer[Material]
	held   atomic.Bool // serving stopped by onKeyVaultError: DisableListener
	ready  chan struct{}

	mu          sync.Mutex
	loadedAt    time.Time
	lastRefresh time.Time
	lastAttempt time.Time
	fromCache   bool
	cond        Code
	lastErr     string
}

// NewSlot returns an empty slot for the certificate name, filled from src.
func NewSlot(name string, src Source) *Slot {
	return &Slot{name: name, source: src, ready: make(chan struct{})}
}

// Name is the certificate's name in the configuration.
func (s *Slot) Name() string { return s.name }

// Source is where the slot's material comes from.
func (s *Slot) Source() Source { return s.source }

// Current returns the material installed, or nil before the first load.
// It returns it even while serving is held back.
func (s *Slot) Current() *Material { return s.cur.Load() }

// KeyPair returns the key pair handshakes get: nil before the first load
// and while serving is held back.
func (s *Slot) KeyPair() *tls.Certificate {
	if s.held.Load() {
		return nil
	}
	if m := s.cur.Load(); m != nil {
		return m.KeyPair
	}
	return nil
}

// Serving reports whether handshakes get the slot's certificate.
func (s *Slot) Serving() bool { return s.Current() != nil && !s.held.Load() }

// Ready is closed once the slot holds material.
func (s *Slot) Ready() <-chan struct{} { return s.ready }

// Install makes m the material in use and returns what it replaces.
// fromCache says m came from the local cache rather than its source.
// Install does not record an attempt; see Record.
func (s *Slot) Install(m *Material, now time.Time, fromCache bool) (prev *Material) {
	prev = s.cur.Swap(m)
	s.mu.Lock()
	s.loadedAt, s.fromCache = now, fromCache
	s.mu.Unlock()
	if prev == nil {
		close(s.ready)
	}
	return prev
}

// Record records an attempt to refresh the slot at now: err nil for a
// usable answer, else what went wrong (its condition by CodeOf). It
// returns the condition before, so that a caller logs a change of
// condition once rather than on every retry.
func (s *Slot) Record(now time.Time, err error) (before Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	before = s.cond
	s.lastAttempt = now
	s.cond, s.lastErr = CodeOf(err), ""
	if err != nil {
		s.lastErr = err.Error()
		return before
	}
	s.lastRefresh, s.fromCache = now, false
	return before
}

// Condition returns the outcome of the last attempt and its error text.
func (s *Slot) Condition() (Code, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cond, s.lastErr
}

// Hold stops (true) or resumes (false) serving the slot's certificate,
// and reports whether that changed anything.
func (s *Slot) Hold(hold bool) (changed bool) {
	return s.held.Swap(hold) != hold
}

// Status reports the slot's state.
func (s *Slot) Status() Status {
	st := Status{Name: s.name, Source: s.source.Describe()}
	s.mu.Lock()
	st.LoadedAt, st.LastRefresh, st.LastAttempt = s.loadedAt, s.lastRefresh, s.lastAttempt
	st.FromCache, st.Condition, st.LastError = s.fromCache, s.cond, s.lastErr
	s.mu.Unlock()
	if m := s.cur.Load(); m != nil {
		st.Ready, st.Serving = true, !s.held.Load()
		st.Version, st.Serial, st.Thumbprint, st.NotAfter = m.Version, m.Serial(), m.Thumbprint(), m.NotAfter()
	}
	return st
}
