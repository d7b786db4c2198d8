package rotate

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/gwtest"
)

// flakySource fails a given number of times, then serves its material,
// counting reads. It stands in for a vault that cannot be reached at
// first, a fault the gateway's tests show end to end with a real vault;
// here it lets the retry schedule be counted.
type flakySource struct {
	failures atomic.Int32
	reads    atomic.Int32
	m        *certs.Material
}

func (f *flakySource) Fetch(context.Context) (*certs.Material, error) {
	f.reads.Add(1)
	if f.failures.Add(-1) >= 0 {
		return nil, certs.Errorf(certs.KeyVaultUnreachable, "vault unreachable")
	}
	return f.m, nil
}

func (f *flakySource) Describe() string { return "flaky" }

func material(t *testing.T) *certs.Material {
	t.Helper()
	ca := gwtest.NewCA(t, "CA")
	m, err := certs.ParseSecret(certs.ContentTypePEM, ca.Issue(t, gwtest.ECDSA, "a.test").PEM(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRetriesUntilLoaded retries a failing source with backoff, far more
// often than the poll interval, until it loads.
func TestRetriesUntilLoaded(t *testing.T) {
	src := &flakySource{m: material(t)}
	src.failures.Store(3)
	slot := certs.NewSlot("site", src)
	m := New(Config{PollInterval: time.Hour, MinRetry: time.Millisecond, MaxRetry: 5 * time.Millisecond},
		[]Certificate{{Slot: slot, Collection: "sslCertificates", Hosts: []string{"a.test"}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	select {
	case <-slot.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not loaded after retries")
	}
	if st := slot.Status(); st.Condition != certs.OK || st.Serial != src.m.Serial() || src.reads.Load() != 4 {
		t.Errorf("status %+v after %d reads, want OK after 4", st, src.reads.Load())
	}
}

// TestRefresh reads on request and reports the outcome, and refuses a
// name it does not keep.
func TestRefresh(t *testing.T) {
	src := &flakySource{m: material(t)}
	slot := certs.NewSlot("site", src)
	m := New(Config{PollInterval: time.Hour}, []Certificate{{Slot: slot, Collection: "sslCertificates"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	<-slot.Ready()

	res, err := m.Refresh(ctx, "site")
	if err != nil || len(res) != 1 || res[0].Changed || res[0].Condition != certs.OK || src.reads.Load() != 2 {
		t.Errorf("Refresh: %+v, %v after %d reads", res, err, src.reads.Load())
	}
	if _, err := m.Refresh(ctx, "other"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Refresh of an unknown name: %v", err)
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		if d := jitter(time.Hour); d < 54*time.Minute || d > 66*time.Minute {
			t.Fatalf("jitter(1h) = %v, outside ±10%%", d)
		}
	}
}

// TestDisableListenerChecksEveryMinute reads listener certificates at
// least every 50 s under DisableListener, so that a refusal nothing
// pushes still stops them within a minute; trusted roots keep the poll
// interval.
func TestDisableListenerChecksEveryMinute(t *testing.T) {
	slot := certs.NewSlot("site", &flakySource{})
	for _, tc := range []struct {
		disable    bool
		collection string
		poll, want time.Duration
	}{
		{false, "sslCertificates", 4 * time.Hour, 4 * time.Hour},
		{true, "sslCertificates", 4 * time.Hour, 50 * time.Second},
		{true, "sslCertificates", 10 * time.Second, 10 * time.Second},
		{true, "trustedRootCertificates", 4 * time.Hour, 4 * time.Hour},
	} {
		m := New(Config{PollInterval: tc.poll, DisableOnError: tc.disable},
			[]Certificate{{Slot: slot, Collection: tc.collection}})
		if got := m.workers[0].interval(); got != tc.want {
			t.Errorf("%+v: interval %v, want %v", tc, got, tc.want)
		}
	}
}

// TestSyncKeepsWorkers syncs a running Manager to a new list: a kept
// slot is not read again, a new one is read at once, and a dropped one
// is no longer known.
func TestSyncKeepsWorkers(t *testing.T) {
	m0 := material(t)
	a, b := &flakySource{m: m0}, &flakySource{m: m0}
	slotA, slotB := certs.NewSlot("a", a), certs.NewSlot("b", b)
	certA := Certificate{Slot: slotA, Collection: "sslCertificates", Hosts: []string{"a.test"}}
	certB := Certificate{Slot: slotB, Collection: "sslCertificates", Hosts: []string{"a.test"}}
	m := New(Config{PollInterval: time.Hour}, []Certificate{certA})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	<-slotA.Ready()

	m.Sync([]Certificate{certA, certB})
	select {
	case <-slotB.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the added certificate was not read")
	}
	if n := a.reads.Load(); n != 1 {
		t.Errorf("the kept certificate was read %d times, want once", n)
	}

	m.Sync([]Certificate{certB})
	if _, err := m.Refresh(ctx, "a"); !errors.Is(err, ErrUnknown) {
		t.Errorf("refresh of a dropped certificate: %v", err)
	}
	if got := len(m.Rotations()); got != 1 {
		t.Errorf("%d workers after dropping one of two", got)
	}
}
