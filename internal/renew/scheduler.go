// Package renew runs the certificate lifetime work of keygate's vaults:
// completing certificate creations in the background, renewing
// certificates by their policies' AutoRenew actions, and recording
// near-expiry (EmailContacts) and expiry events.
//
// A Scheduler runs in every vault process. Each job is claimed with a
// lease in the shared store before it runs, and the vault re-checks in
// the transaction that stores the result that the job is still due, so a
// renewal happens once however many processes share the store, and a job
// a process dropped (it stopped mid-way) is picked up by another once its
// lease runs out.
package renew

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// Defaults of Config.
const (
	DefaultInterval   = 5 * time.Minute
	DefaultLease      = 10 * time.Minute
	DefaultBackoff    = time.Hour
	DefaultConcurrent = 2
)

// Config configures a Scheduler. Vaults is required.
type Config struct {
	Vaults *vault.Service

	// Notifier, when set, wakes the scheduler as soon as a job is waiting
	// (a certificate creation), in this process or another.
	Notifier store.Notifier

	// Interval is how often the scheduler looks for due work without
	// being woken. Default DefaultInterval.
	Interval time.Duration

	// Lease is how long a claimed job is reserved for its holder; a job
	// whose holder stopped is taken up by another after it. Default
	// DefaultLease.
	Lease time.Duration

	// Backoff is how long a failed renewal waits before it is tried
	// again. Default DefaultBackoff.
	Backoff time.Duration

	// Concurrent bounds the jobs run at once (key generation is CPU-bound).
	// Default DefaultConcurrent.
	Concurrent int

	// Holder names this process in leases; empty means a random id.
	Holder string

	// Logger receives lifecycle messages; nil discards them.
	Logger *slog.Logger

	// Finished, when set, is told of each job this process ran to its
	// end, with its outcome (for metrics). Jobs cut short by shutdown and
	// jobs another process holds are not reported.
	Finished func(kind string, err error)
}

// Scheduler finds and runs due certificate jobs. It is safe for
// concurrent use. Its clock is the vault service's, so tests that drive
// that clock and call RunOnce decide when renewals fall due.
type Scheduler struct {
	cfg  Config
	log  *slog.Logger
	sem  chan struct{}
	kick chan struct{}

	// mu guards running: jobs under way in this process, by lease key,
	// so a pass does not start a job a previous pass still runs.
	mu      sync.Mutex
	running map[string]bool
	wg      sync.WaitGroup
}

// New returns a Scheduler. It does no I/O.
func New(cfg Config) *Scheduler {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Concurrent <= 0 {
		cfg.Concurrent = DefaultConcurrent
	}
	if cfg.Holder == "" {
		var b [8]byte
		rand.Read(b[:])
		cfg.Holder = hex.EncodeToString(b[:])
	}
	s := &Scheduler{
		cfg:     cfg,
		log:     cfg.Logger,
		sem:     make(chan struct{}, cfg.Concurrent),
		kick:    make(chan struct{}, 1),
		running: make(map[string]bool),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Run looks for due work at once, then every interval and whenever woken
// (a notification, or Kick), until ctx is done. It waits for the jobs it
// started before it returns.
func (s *Scheduler) Run(ctx context.Context) {
	defer s.wg.Wait()
	var woken <-chan struct{}
	if s.cfg.Notifier != nil {
		c, stop := s.cfg.Notifier.Subscribe(vault.JobsTopic)
		defer stop()
		woken = c
	}
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		s.start(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-woken:
		case <-s.kick:
		}
	}
}

// Kick makes a running scheduler look for due work now.
func (s *Scheduler) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// RunOnce finds the jobs due now, runs them and waits for them: a pass of
// Run, made synchronous for tests that drive the clock.
func (s *Scheduler) RunOnce(ctx context.Context) {
	var wg sync.WaitGroup
	s.dispatch(ctx, &wg)
	wg.Wait()
}

// start begins a pass whose jobs run in the background.
func (s *Scheduler) start(ctx context.Context) {
	s.dispatch(ctx, &s.wg)
}

// dispatch finds due jobs in every vault and starts each that is not
// already running here, at most Concurrent at once; wg tracks them.
func (s *Scheduler) dispatch(ctx context.Context, wg *sync.WaitGroup) {
	names, err := s.cfg.Vaults.VaultNames(ctx)
	if err != nil {
		s.log.Warn("listing vaults for certificate jobs failed", "err", err)
		return
	}
	for _, name := range names {
		jobs, err := s.cfg.Vaults.DueJobs(ctx, name)
		if err != nil {
			s.log.Warn("finding certificate jobs failed", "vault", name, "err", err)
			continue
		}
		for _, j := range jobs {
			if !s.markRunning(j) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.unmarkRunning(j)
				s.run(ctx, j)
			}()
		}
	}
}

func (s *Scheduler) markRunning(j vault.Job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := j.Vault + "/" + j.LeaseKey()
	if s.running[key] {
		return false
	}
	s.running[key] = true
	return true
}

func (s *Scheduler) unmarkRunning(j vault.Job) {
	s.mu.Lock()
	delete(s.running, j.Vault+"/"+j.LeaseKey())
	s.mu.Unlock()
}

// run claims j and runs it. A renewal that fails holds its lease for the
// back-off, so no process retries it at once; other jobs release theirs.
func (s *Scheduler) run(ctx context.Context, j vault.Job) {
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		return
	}
	won, err := s.cfg.Vaults.ClaimJob(ctx, j, s.cfg.Holder, s.cfg.Lease)
	if err != nil {
		s.log.Warn("claiming certificate job failed", "job", j.String(), "err", err)
		return
	}
	if !won {
		s.log.Debug("certificate job held by another process", "job", j.String())
		return
	}
	err = s.cfg.Vaults.RunJob(ctx, j)
	if s.cfg.Finished != nil && ctx.Err() == nil {
		s.cfg.Finished(j.Kind, err)
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("certificate job failed", "job", j.String(), "err", err)
		if j.Kind == vault.JobRenew {
			if herr := s.cfg.Vaults.HoldJob(ctx, j, s.cfg.Holder, s.cfg.Backoff); herr != nil {
				s.log.Warn("holding failed renewal for back-off failed", "job", j.String(), "err", herr)
			}
			return
		}
	}
	if err := s.cfg.Vaults.ReleaseJob(ctx, j, s.cfg.Holder); err != nil && ctx.Err() == nil {
		s.log.Warn("releasing certificate job failed", "job", j.String(), "err", err)
	}
}
