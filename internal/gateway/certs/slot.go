package certs

import (
	"context"
	"crypto/tls"
	"log/slog"
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

// Status is what a Slot reports about its certificate.
type Status struct {
	Name        string    `json:"name"`
	Source      string    `json:"source"`
	Ready       bool      `json:"ready"`
	Version     string    `json:"version,omitempty"`
	Serial      string    `json:"serial,omitempty"`
	Thumbprint  string    `json:"thumbprint,omitempty"`
	NotAfter    time.Time `json:"notAfter,omitzero"`
	LoadedAt    time.Time `json:"loadedAt,omitzero"`
	LastAttempt time.Time `json:"lastAttempt,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
}

// Slot holds the certificate of one sslCertificate or
// trustedRootCertificate. Handshakes read it with Current, without a lock;
// Install replaces it atomically, so a handshake sees the old material or
// the new, and connections already open keep the one they started with.
// A Slot is safe for concurrent use.
type Slot struct {
	name   string
	source Source
	cur    atomic.Pointer[Material]
	ready  chan struct{}

	mu          sync.Mutex
	loadedAt    time.Time
	lastAttempt time.Time
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

// Current returns the material in use, or nil before the first load.
func (s *Slot) Current() *Material { return s.cur.Load() }

// KeyPair returns the key pair in use, or nil before the first load.
func (s *Slot) KeyPair() *tls.Certificate {
	if m := s.cur.Load(); m != nil {
		return m.KeyPair
	}
	return nil
}

// Ready is closed once the slot holds material.
func (s *Slot) Ready() <-chan struct{} { return s.ready }

// Install makes m the material in use and returns what it replaces.
func (s *Slot) Install(m *Material, now time.Time) (prev *Material) {
	prev = s.cur.Swap(m)
	s.mu.Lock()
	s.loadedAt, s.lastAttempt, s.lastErr = now, now, ""
	s.mu.Unlock()
	if prev == nil {
		close(s.ready)
	}
	return prev
}

// fail records a failed attempt. It reports whether the error differs
// from the last one, so that a retry loop logs a condition once.
func (s *Slot) fail(err error, now time.Time) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastAttempt = now
	changed = s.lastErr != err.Error()
	s.lastErr = err.Error()
	return changed
}

// Status reports the slot's state.
func (s *Slot) Status() Status {
	st := Status{Name: s.name, Source: s.source.Describe()}
	s.mu.Lock()
	st.LoadedAt, st.LastAttempt, st.LastError = s.loadedAt, s.lastAttempt, s.lastErr
	s.mu.Unlock()
	if m := s.cur.Load(); m != nil {
		st.Ready = true
		st.Version, st.Serial, st.Thumbprint, st.NotAfter = m.Version, m.Serial(), m.Thumbprint(), m.NotAfter()
	}
	return st
}

// Loader fills slots from their sources: each slot is fetched until it
// has loaded once, retrying with backoff while its source fails.
//
// TODO: refresh loaded slots (polling, push from the vault, manual
// refresh) is the next step; Refresh is the operation it will call.
type Loader struct {
	Logger *slog.Logger
	Now    func() time.Time

	// MinBackoff and MaxBackoff bound the wait between failed attempts;
	// defaults 1 second and 1 minute.
	MinBackoff, MaxBackoff time.Duration
}

// Refresh fetches s's material once and installs it. On failure the slot
// keeps what it had and records the error.
func (l *Loader) Refresh(ctx context.Context, s *Slot) error {
	m, err := s.source.Fetch(ctx)
	now := l.now()
	if err != nil {
		if s.fail(err, now) {
			l.log().Warn("certificate not loaded", "certificate", s.name,
				"source", s.source.Describe(), "error", err)
		}
		return err
	}
	prev := s.Install(m, now)
	if prev == nil || prev.Version != m.Version || prev.Thumbprint() != m.Thumbprint() {
		l.log().Info("certificate loaded", "certificate", s.name, "source", s.source.Describe(),
			"version", m.Version, "serial", m.Serial(), "thumbprint", m.Thumbprint(),
			"not_after", m.NotAfter())
	}
	return nil
}

// Run loads every slot not yet loaded, in parallel, and returns when all
// are loaded or ctx ends.
func (l *Loader) Run(ctx context.Context, slots []*Slot) {
	var wg sync.WaitGroup
	for _, s := range slots {
		if s.Current() != nil {
			continue
		}
		wg.Go(func() { l.loadUntilDone(ctx, s) })
	}
	wg.Wait()
}

func (l *Loader) loadUntilDone(ctx context.Context, s *Slot) {
	wait := l.MinBackoff
	if wait <= 0 {
		wait = time.Second
	}
	maxWait := l.MaxBackoff
	if maxWait <= 0 {
		maxWait = time.Minute
	}
	for {
		if l.Refresh(ctx, s) == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxWait)
	}
}

func (l *Loader) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Loader) log() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.New(slog.DiscardHandler)
}
