package identity_test

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/identity"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

// TestMemStore holds the test store to the contract that bolt meets.
func TestMemStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newMemStore() })
}

func TestServicePrincipalLifecycle(t *testing.T) {
	f := newFixture(t, nil, nil)
	ctx := t.Context()
	sp, secret, err := f.auth.CreateServicePrincipal(ctx, "gateway fleet", []string{"reader"})
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	for name, id := range map[string]string{"ObjectID": sp.ObjectID, "ClientID": sp.ClientID} {
		if u, err := uuid.Parse(id); err != nil || u.Version() != 4 || len(id) != 36 {
			t.Errorf("%s = %q, want a random GUID", name, id)
		}
	}
	if raw, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(raw) != 32 {
		t.Errorf("secret is not 32 bytes of base64url: %d bytes, %v", len(raw), err)
	}

	got, err := f.auth.ServicePrincipal(ctx, sp.ClientID)
	if err != nil {
		t.Fatalf("ServicePrincipal: %v", err)
	}
	if diff := cmp.Diff(sp, got); diff != "" {
		t.Errorf("ServicePrincipal (-created +loaded):\n%s", diff)
	}
	if got.DisplayName != "gateway fleet" || !slices.Equal(got.Roles, []string{"reader"}) {
		t.Errorf("DisplayName, Roles = %q, %v", got.DisplayName, got.Roles)
	}

	// Only the hash of the secret is stored.
	for _, v := range f.store.(*memStore).raw("identity_principals") {
		if strings.Contains(string(v), secret) {
			t.Errorf("stored record holds the client secret: %s", v)
		}
	}

	other, _ := f.newPrincipal(t)
	list, err := f.auth.ListServicePrincipals(ctx)
	if err != nil {
		t.Fatalf("ListServicePrincipals: %v", err)
	}
	want := []identity.ServicePrincipal{sp, other}
	slices.SortFunc(want, func(a, b identity.ServicePrincipal) int { return strings.Compare(a.ClientID, b.ClientID) })
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("ListServicePrincipals (-want +got):\n%s", diff)
	}

	if err := f.auth.DeleteServicePrincipal(ctx, sp.ClientID); err != nil {
		t.Fatalf("DeleteServicePrincipal: %v", err)
	}
	if _, err := f.auth.ServicePrincipal(ctx, sp.ClientID); !errors.Is(err, identity.ErrPrincipalNotFound) {
		t.Errorf("ServicePrincipal after delete: error = %v, want %v", err, identity.ErrPrincipalNotFound)
	}
	if err := f.auth.DeleteServicePrincipal(ctx, sp.ClientID); !errors.Is(err, identity.ErrPrincipalNotFound) {
		t.Errorf("second DeleteServicePrincipal: error = %v, want %v", err, identity.ErrPrincipalNotFound)
	}
	if list, _ := f.auth.ListServicePrincipals(ctx); len(list) != 1 || list[0].ClientID != other.ClientID {
		t.Errorf("ListServicePrincipals after delete = %+v, want only %s", list, other.ClientID)
	}
}

func TestListServicePrincipalsEmpty(t *testing.T) {
	f := newFixture(t, nil, nil)
	list, err := f.auth.ListServicePrincipals(t.Context())
	if err != nil || len(list) != 0 {
		t.Errorf("ListServicePrincipals = %v, %v; want none", list, err)
	}
}

func TestCreateServicePrincipalErrors(t *testing.T) {
	f := newFixture(t, nil, nil)
	tests := []struct {
		name        string
		displayName string
		roles       []string
		want        string
	}{
		{"empty name", " ", nil, "displayName: must not be empty"},
		{"long name", strings.Repeat("n", 257), nil, "displayName: longer than 256 bytes"},
		{"control character", "a\nb", nil, "displayName: contains control characters"},
		{"empty role", "app", []string{"reader", ""}, "roles[1]: must not be empty"},
		{"role with space", "app", []string{"key gate"}, `roles[0]: "key gate" contains spaces`},
		{"duplicate role", "app", []string{"a", "b", "a"}, `roles[2]: "a" is listed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, secret, err := f.auth.CreateServicePrincipal(t.Context(), tt.displayName, tt.roles)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
			if secret != "" {
				t.Error("a secret was returned with an error")
			}
		})
	}
	if list, _ := f.auth.ListServicePrincipals(t.Context()); len(list) != 0 {
		t.Errorf("refused principals were stored: %+v", list)
	}
}

// TestIssueToken drives the clock: the token is valid for the configured
// lifetime from the clock's now, and the verifier follows the same clock.
func TestIssueToken(t *testing.T) {
	f := newFixture(t, nil, nil)
	now := time.Date(2026, 6, 1, 12, 0, 0, 500, time.UTC)
	cfg := f.config(f.srv.URL)
	cfg.TokenLifetime = 10 * time.Minute
	cfg.Now = func() time.Time { return now }
	a := identity.New(cfg)
	if err := a.Init(t.Context()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	sp, _ := f.newPrincipal(t, "reader")

	tok, expires, err := a.IssueToken(sp, vaultAudience+"/")
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	if want := now.Truncate(time.Second).Add(10 * time.Minute); !expires.Equal(want) {
		t.Errorf("expires = %v, want %v", expires, want)
	}
	for _, step := range []struct {
		at   time.Time
		want error
	}{
		{now, nil},
		{expires.Add(-time.Second), nil},
		{expires.Add(authz.DefaultLeeway), authz.ErrTokenExpired},
	} {
		v := authz.NewVerifier(authz.VerifierConfig{
			Issuer: a.Issuer(), TenantID: a.TenantID(), Audiences: []string{vaultAudience},
			Keys: a, Now: func() time.Time { return step.at },
		})
		if _, err := v.Verify(tok); !errors.Is(err, step.want) || (step.want == nil && err != nil) {
			t.Errorf("Verify at %v: error = %v, want %v", step.at, err, step.want)
		}
	}

	if _, _, err := a.IssueToken(sp, "https://elsewhere.example"); !errors.Is(err, identity.ErrUnknownAudience) {
		t.Errorf("IssueToken to an unknown audience: error = %v, want %v", err, identity.ErrUnknownAudience)
	}
	if _, _, err := a.IssueToken(identity.ServicePrincipal{}, vaultAudience); err == nil {
		t.Error("IssueToken for an empty principal succeeded")
	}
	if logs := f.logs.String(); strings.Contains(logs, tok) {
		t.Error("the log holds the token")
	} else if !strings.Contains(logs, "msg=\"issued token\" client_id="+sp.ClientID) {
		t.Errorf("the log does not record the issuance at debug:\n%s", logs)
	}
}
