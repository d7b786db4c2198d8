package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keygate/keygate/internal/atomicfile"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/client"
	"github.com/keygate/keygate/internal/identity"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

const keyAdminClientID = "admin-client-id"

// adminPermissions is every permission, for the administrator's policy on
// the default vault.
func adminPermissions() authz.Permissions {
	return authz.Permissions{
		Keys:         []string{authz.PermissionAll},
		Secrets:      []string{authz.PermissionAll},
		Certificates: []string{authz.PermissionAll},
	}
}

// ensureAdmin creates, on first start, the administrator service principal,
// grants it everything on the default vault and writes admin.json (mode
// 0600). Later starts find it in the store and leave the file alone.
func (s *Server) ensureAdmin(ctx context.Context) error {
	clientID, err := s.storedAdminClientID(ctx)
	if err == nil {
		sp, err := s.authority.ServicePrincipal(ctx, clientID)
		if err != nil {
			return fmt.Errorf("loading administrator principal: %w", err)
		}
		_, err = s.vaults.EnsureVault(ctx, vault.DefaultVault, s.authority.TenantID(), s.adminPolicy(sp))
		return err
	}
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return s.createAdmin(ctx)
}

func (s *Server) createAdmin(ctx context.Context) error {
	sp, secret, err := s.authority.CreateServicePrincipal(ctx, "keygate administrator", []string{authz.RoleAdmin})
	if err != nil {
		return fmt.Errorf("creating administrator principal: %w", err)
	}
	if _, err := s.vaults.EnsureVault(ctx, vault.DefaultVault, s.authority.TenantID(), s.adminPolicy(sp)); err != nil {
		return err
	}
	creds := client.Credentials{
		TenantID:      s.authority.TenantID(),
		ClientID:      sp.ClientID,
		ClientSecret:  secret,
		AuthorityHost: s.authorityHost,
		VaultURL:      s.vaultURL,
	}
	if s.cfg.TLSCertFile == "" {
		creds.CAFile = s.dir.caFile()
	}
	b, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.dir.adminFile(), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing administrator credentials: %w", err)
	}
	s.log.Info("created administrator principal", "client_id", sp.ClientID, "credentials", s.dir.adminFile())
	return s.st.Update(ctx, func(tx store.Tx) error {
		return tx.Put(bucketMeta, keyAdminClientID, []byte(sp.ClientID))
	})
}

func (s *Server) adminPolicy(sp identity.ServicePrincipal) []authz.AccessPolicy {
	return []authz.AccessPolicy{{
		TenantID:    s.authority.TenantID(),
		ObjectID:    sp.ObjectID,
		Permissions: adminPermissions(),
	}}
}

func (s *Server) storedAdminClientID(ctx context.Context) (string, error) {
	var id string
	err := s.st.View(ctx, func(tx store.Tx) error {
		b, err := tx.Get(bucketMeta, keyAdminClientID)
		id = string(b)
		return err
	})
	return id, err
}
