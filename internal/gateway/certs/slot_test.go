package certs_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/gwtest"
)

// flakySource fails a given number of times, then serves its material.
// It stands in for a vault that cannot be reached at first, a fault the
// real vault's tests cover end to end in the gateway package.
type flakySource struct {
	failures atomic.Int32
	m        *certs.Material
}

func (f *flakySource) Fetch(context.Context) (*certs.Material, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, errors.New("vault unreachable")
	}
	return f.m, nil
}

func (f *flakySource) Describe() string { return "flaky" }

func TestLoaderRetriesUntilLoaded(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	m, err := certs.ParseSecret(certs.ContentTypePEM, ca.Issue(t, gwtest.ECDSA, "a.test").PEM(t))
	if err != nil {
		t.Fatal(err)
	}
	src := &flakySource{m: m}
	src.failures.Store(2)
	slot := certs.NewSlot("site", src)
	l := &certs.Loader{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l.Run(ctx, []*certs.Slot{slot})

	select {
	case <-slot.Ready():
	default:
		t.Fatal("slot not ready after Run")
	}
	st := slot.Status()
	if !st.Ready || st.Serial != m.Serial() || st.LastError != "" {
		t.Errorf("status %+v", st)
	}
}

func TestSlotSwapKeepsOldForHolders(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	a, _ := certs.ParseSecret("", ca.Issue(t, gwtest.ECDSA, "a.test").PEM(t))
	b, _ := certs.ParseSecret("", ca.Issue(t, gwtest.ECDSA, "a.test").PEM(t))
	slot := certs.NewSlot("site", certs.Static{M: a})
	if slot.KeyPair() != nil {
		t.Fatal("empty slot has a key pair")
	}
	slot.Install(a, time.Now())
	held := slot.KeyPair()
	if prev := slot.Install(b, time.Now()); prev != a {
		t.Error("Install did not return the replaced material")
	}
	if slot.KeyPair() != b.KeyPair || held != a.KeyPair {
		t.Error("swap did not replace the current pair, or changed a held one")
	}
}
