package renew_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/renew"
	"github.com/keygate/keygate/internal/seal"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/bolt"
	"github.com/keygate/keygate/internal/testkit"
	"github.com/keygate/keygate/internal/vault"
)

// clock is a settable clock.
type clock = testkit.Clock

// newServices returns n vault services sharing one store, as n vault
// processes sharing a database do, on one driven clock.
func newServices(t *testing.T, n int) ([]*vault.Service, store.Store, *clock) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "v.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _ := seal.GenerateKey()
	sealer, _ := seal.NewSealer(key)
	backup, _ := sealer.Derive("backup")
	clk := testkit.NewClock(time.Now())
	var out []*vault.Service
	for range n {
		out = append(out, vault.New(vault.Config{Store: st, Sealer: sealer, BackupSealer: backup, Now: clk.Now}))
	}
	if _, err := out[0].EnsureVault(context.Background(), vault.DefaultVault, "tenant", []authz.AccessPolicy{}); err != nil {
		t.Fatal(err)
	}
	return out, st, clk
}

func policy(issuer string, actions ...vault.LifetimeActionInput) *vault.PolicyInput {
	kty, crv, subject, months := "EC", "P-256", "CN=sched.example", 12
	return &vault.PolicyInput{KeyType: &kty, Curve: &crv, Subject: &subject, ValidityMonths: &months,
		IssuerName: &issuer, LifetimeActions: actions}
}

func action(kind string, daysBefore int) vault.LifetimeActionInput {
	return vault.LifetimeActionInput{Action: &kind, DaysBeforeExpiry: &daysBefore}
}

func create(t *testing.T, svc *vault.Service, s *renew.Scheduler, name string, pol *vault.PolicyInput) string {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.CreateCertificate(ctx, vault.DefaultVault, name, vault.CreateCertificate{Policy: pol}); err != nil {
		t.Fatal(err)
	}
	s.RunOnce(ctx)
	c, err := svc.GetCertificate(ctx, vault.DefaultVault, name, "")
	if err != nil {
		t.Fatalf("after a pass, %s has no version: %v", name, err)
	}
	return c.Version
}

// TestRenewalHappensOnceAcrossProcesses runs four schedulers, each on its
// own service over one store, at the moment a renewal falls due: one new
// version is made, and one renewed event recorded.
func TestRenewalHappensOnceAcrossProcesses(t *testing.T) {
	svcs, _, clk := newServices(t, 4)
	var scheds []*renew.Scheduler
	for i, svc := range svcs {
		scheds = append(scheds, renew.New(renew.Config{Vaults: svc, Holder: string(rune('a' + i))}))
	}
	first := create(t, svcs[0], scheds[0], "shared", policy("Self", action(vault.ActionAutoRenew, 30)))

	clk.Advance(340 * 24 * time.Hour)
	var wg sync.WaitGroup
	for _, s := range scheds {
		wg.Go(func() { s.RunOnce(context.Background()) })
	}
	wg.Wait()

	ctx := context.Background()
	versions, _, err := svcs[0].ListCertificateVersions(ctx, vault.DefaultVault, "shared", "", 25)
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 2 {
		t.Fatalf("%d versions after concurrent passes, want 2 (one renewal)", len(versions))
	}
	cur, _ := svcs[1].GetCertificate(ctx, vault.DefaultVault, "shared", "")
	if cur.Version == first {
		t.Errorf("current version is still the first")
	}
	if n := countEvents(t, svcs[0], vault.EventRenewed); n != 1 {
		t.Errorf("%d renewed events, want 1", n)
	}
}

func countEvents(t *testing.T, svc *vault.Service, typ string) int {
	t.Helper()
	evs, err := svc.Events(context.Background(), vault.DefaultVault, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// TestLifetimeEventsAreRecordedOnce drives the clock through a
// certificate's life: the EmailContacts action records near_expiry once,
// expiry records expired once; a renewal whose issuer is gone records
// renewal_failed.
func TestLifetimeEventsAreRecordedOnce(t *testing.T) {
	svcs, _, clk := newServices(t, 1)
	svc := svcs[0]
	s := renew.New(renew.Config{Vaults: svc, Holder: "only"})
	ctx := context.Background()
	if _, err := svc.SetIssuer(ctx, vault.DefaultVault, "doomed-ca", vault.IssuerInput{Provider: ptr("keygate-ca")}); err != nil {
		t.Fatal(err)
	}
	create(t, svc, s, "noticed", policy("Self", action(vault.ActionEmailContacts, 60)))
	create(t, svc, s, "orphan", policy("doomed-ca", action(vault.ActionAutoRenew, 30)))
	if _, err := svc.DeleteIssuer(ctx, vault.DefaultVault, "doomed-ca"); err != nil {
		t.Fatal(err)
	}

	clk.Advance(310 * 24 * time.Hour) // within 60 days of expiry, not 30
	s.RunOnce(ctx)
	s.RunOnce(ctx)
	if n := countEvents(t, svc, vault.EventNearExpiry); n != 1 {
		t.Errorf("%d near_expiry events, want 1", n)
	}
	if n := countEvents(t, svc, vault.EventRenewalFailed); n != 0 {
		t.Errorf("renewal attempted early: %d renewal_failed events", n)
	}

	clk.Advance(40 * 24 * time.Hour) // due for renewal, whose issuer is gone
	s.RunOnce(ctx)
	if n := countEvents(t, svc, vault.EventRenewalFailed); n != 1 {
		t.Errorf("%d renewal_failed events, want 1", n)
	}
	s.RunOnce(ctx) // within the back-off: no second attempt
	if n := countEvents(t, svc, vault.EventRenewalFailed); n != 1 {
		t.Errorf("%d renewal_failed events within the back-off, want 1", n)
	}

	clk.Advance(30 * 24 * time.Hour) // both expired
	s.RunOnce(ctx)
	s.RunOnce(ctx)
	if n := countEvents(t, svc, vault.EventExpired); n != 2 {
		t.Errorf("%d expired events, want 2 (one per certificate)", n)
	}
}

func ptr[T any](v T) *T { return &v }

// TestCreationResumesAfterAProcessStops: a creation whose process stopped
// before it made the key is completed by another scheduler once the
// first one's lease has run out.
func TestCreationResumesAfterAProcessStops(t *testing.T) {
	svcs, _, clk := newServices(t, 2)
	ctx := context.Background()
	op, err := svcs[0].CreateCertificate(ctx, vault.DefaultVault, "orphaned", vault.CreateCertificate{Policy: policy("Self")})
	if err != nil {
		t.Fatal(err)
	}
	// Process 0 claims the job and stops before doing it.
	job := vault.Job{Vault: vault.DefaultVault, Kind: vault.JobCreate, Name: "orphaned", Ref: op.RequestID}
	if won, err := svcs[0].ClaimJob(ctx, job, "stopped", renew.DefaultLease); err != nil || !won {
		t.Fatalf("ClaimJob = %v, %v", won, err)
	}
	other := renew.New(renew.Config{Vaults: svcs[1], Holder: "survivor"})
	other.RunOnce(ctx)
	if got, _ := svcs[1].CertificateOperation(ctx, vault.DefaultVault, "orphaned"); got.Status != vault.StatusInProgress {
		t.Fatalf("another process ran a job under a live lease: %s", got.Status)
	}
	clk.Advance(renew.DefaultLease + time.Second)
	other.RunOnce(ctx)
	if got, _ := svcs[1].CertificateOperation(ctx, vault.DefaultVault, "orphaned"); got.Status != vault.StatusCompleted {
		t.Errorf("after the lease ran out the creation is %s, want completed", got.Status)
	}
}

// TestRunWakesOnNotification: a running scheduler completes a creation
// at once, woken by the store's notification, long before its interval.
func TestRunWakesOnNotification(t *testing.T) {
	svcs, st, _ := newServices(t, 1)
	s := renew.New(renew.Config{Vaults: svcs[0], Notifier: st.(store.Notifier), Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	if _, err := svcs[0].CreateCertificate(ctx, vault.DefaultVault, "prompt", vault.CreateCertificate{Policy: policy("Self")}); err != nil {
		t.Fatal(err)
	}
	for range 400 {
		if op, _ := svcs[0].CertificateOperation(ctx, vault.DefaultVault, "prompt"); op.Status == vault.StatusCompleted {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("the creation was not completed within 10 seconds of its notification")
}
