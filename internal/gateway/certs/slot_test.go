package certs_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/gwtest"
)

func mustParse(t *testing.T, l *gwtest.Leaf) *certs.Material {
	t.Helper()
	m, err := certs.ParseSecret(certs.ContentTypePEM, l.PEM(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSlotSwapKeepsOldForHolders(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	a := mustParse(t, ca.Issue(t, gwtest.ECDSA, "a.test"))
	b := mustParse(t, ca.Issue(t, gwtest.ECDSA, "a.test"))
	slot := certs.NewSlot("site", certs.Static{M: a})
	if slot.KeyPair() != nil {
		t.Fatal("empty slot has a key pair")
	}
	slot.Install(a, time.Now(), false)
	held := slot.KeyPair()
	if prev := slot.Install(b, time.Now(), false); prev != a {
		t.Error("Install did not return the replaced material")
	}
	if slot.KeyPair() != b.KeyPair || held != a.KeyPair {
		t.Error("swap did not replace the current pair, or changed a held one")
	}
}

// TestSlotHold stops and resumes serving without losing the material.
func TestSlotHold(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	a := mustParse(t, ca.Issue(t, gwtest.ECDSA, "a.test"))
	slot := certs.NewSlot("site", certs.Static{M: a})
	slot.Install(a, time.Now(), false)
	if !slot.Hold(true) || slot.Hold(true) {
		t.Error("Hold(true) twice: want changed, then unchanged")
	}
	if slot.KeyPair() != nil || slot.Serving() || slot.Current() != a {
		t.Error("a held slot still serves, or lost its material")
	}
	if st := slot.Status(); !st.Ready || st.Serving {
		t.Errorf("status of a held slot: ready %v serving %v", st.Ready, st.Serving)
	}
	if !slot.Hold(false) || slot.KeyPair() != a.KeyPair {
		t.Error("Hold(false) did not resume serving")
	}
}

// TestSlotRecord keeps the condition of the last attempt and reports
// the one before, so that callers log changes only.
func TestSlotRecord(t *testing.T) {
	slot := certs.NewSlot("site", certs.Static{})
	t0 := time.Unix(1000, 0)
	steps := []struct {
		err        error
		wantBefore certs.Code
		wantNow    certs.Code
	}{
		{nil, "", certs.OK},
		{certs.Errorf(certs.KeyVaultUnreachable, "reading: connection refused"), certs.OK, certs.KeyVaultUnreachable},
		{certs.Errorf(certs.KeyVaultUnreachable, "reading: timeout"), certs.KeyVaultUnreachable, certs.KeyVaultUnreachable},
		{errors.Join(errors.New("decoding"), certs.ErrNoKey), certs.KeyVaultUnreachable, certs.CertificateUnusable},
		{nil, certs.CertificateUnusable, certs.OK},
	}
	for i, s := range steps {
		now := t0.Add(time.Duration(i) * time.Second)
		if before := slot.Record(now, s.err); before != s.wantBefore {
			t.Errorf("step %d: before %q, want %q", i, before, s.wantBefore)
		}
		st := slot.Status()
		if st.Condition != s.wantNow || !st.LastAttempt.Equal(now) {
			t.Errorf("step %d: status %+v, want condition %s at %v", i, st, s.wantNow, now)
		}
		if (s.err == nil) != st.LastRefresh.Equal(now) {
			t.Errorf("step %d: last refresh %v", i, st.LastRefresh)
		}
		if s.err != nil && st.LastError != s.err.Error() {
			t.Errorf("step %d: last error %q", i, st.LastError)
		}
	}
}

// TestCheck refuses what a listener cannot serve: out of its validity,
// or not covering a host name of the listener.
func TestCheck(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	now := time.Now()
	good := mustParse(t, ca.Issue(t, gwtest.ECDSA, "www.example.test", "*.api.example.test"))
	expired := mustParse(t, ca.IssueValid(t, gwtest.ECDSA, now.Add(-48*time.Hour), now.Add(-time.Hour), "www.example.test"))
	future := mustParse(t, ca.IssueValid(t, gwtest.ECDSA, now.Add(time.Hour), now.Add(48*time.Hour), "www.example.test"))
	tests := []struct {
		name  string
		m     *certs.Material
		hosts []string
		want  certs.Code
	}{
		{"covers exact and wildcard", good, []string{"www.example.test", "*.api.example.test"}, certs.OK},
		{"wildcard SAN covers a name under it", good, []string{"v1.api.example.test"}, certs.OK},
		{"basic listener", good, nil, certs.OK},
		{"pattern that cannot be checked", good, []string{"w?w.other.test"}, certs.OK},
		{"exact name not covered", good, []string{"other.example.test"}, certs.CertificateHostNameMismatch},
		{"wildcard not covered", good, []string{"*.example.test"}, certs.CertificateHostNameMismatch},
		{"expired", expired, []string{"www.example.test"}, certs.CertificateExpired},
		{"not yet valid", future, []string{"www.example.test"}, certs.CertificateNotYetValid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := certs.Check(tc.m, now, tc.hosts)
			if got := certs.CodeOf(err); got != tc.want {
				t.Fatalf("Check: %v (%s), want %s", err, got, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.m.Serial()) {
				t.Errorf("error %q does not name the serial", err)
			}
		})
	}
}
