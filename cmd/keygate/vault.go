package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/client"
	"github.com/keygate/keygate/internal/manage"
)

func vaultCommand() *cobra.Command {
	var f clientFlags
	var vaultName string
	cmd := &cobra.Command{Use: "vault", Short: "Serve vaults, and manage them, their access policies and network rules"}
	f.register(cmd)
	cmd.PersistentFlags().StringVar(&vaultName, "name", "default", "vault name")
	cmd.AddCommand(serveCommand(), vaultShowCommand(&f, &vaultName),
		setPolicyCommand(&f, &vaultName), deletePolicyCommand(&f, &vaultName),
		vaultCreateCommand(&f, &vaultName), vaultUpdateCommand(&f, &vaultName),
		vaultListCommand(&f), vaultDeleteCommand(&f, &vaultName),
		vaultRecoverCommand(&f, &vaultName), deletedVaultCommand(&f, &vaultName),
		assignRoleCommand(&f, &vaultName), networkRuleCommand(&f, &vaultName),
		vaultSnapshotCommand(&f))
	return cmd
}

// mgmt calls the management API as the credentials' principal.
type mgmt struct {
	base  string
	hc    *http.Client
	token string
	creds client.Credentials
}

func (f *clientFlags) mgmt(ctx context.Context) (*mgmt, error) {
	creds, err := f.load()
	if err != nil {
		return nil, err
	}
	hc, err := client.Transport(creds.CAFile)
	if err != nil {
		return nil, err
	}
	tok, err := creds.Token(ctx, hc, manage.Audience+"/.default")
	if err != nil {
		return nil, err
	}
	base := f.vaultURL
	if base == "" {
		base = creds.VaultURL
	}
	return &mgmt{base: strings.TrimSuffix(base, "/"), hc: hc, token: tok, creds: creds}, nil
}

// vaultDoc is a vault as the management API returns it.
type vaultDoc struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		TenantID                     string               `json:"tenantId"`
		AccessPolicies               []authz.AccessPolicy `json:"accessPolicies"`
		EnableSoftDelete             bool                 `json:"enableSoftDelete"`
		SoftDeleteRetentionInDays    int                  `json:"softDeleteRetentionInDays"`
		EnabledForTemplateDeployment bool                 `json:"enabledForTemplateDeployment"`
		NetworkACLs                  authz.NetworkACLs    `json:"networkAcls"`
		VaultURI                     string               `json:"vaultUri"`
		EnablePurgeProtection        bool                 `json:"enablePurgeProtection"`
	} `json:"properties"`
}

func (m *mgmt) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil // a 204, or an answer the caller does not need
	}
	return json.Unmarshal(b, out)
}

// do calls the management API as the credentials' principal.
func (f *clientFlags) do(cmd *cobra.Command, method, path string, body, out any) error {
	m, err := f.mgmt(cmd.Context())
	if err != nil {
		return err
	}
	return m.do(cmd.Context(), method, path, body, out)
}

// call calls the management API and prints its answer.
func (f *clientFlags) call(cmd *cobra.Command, method, path string, body any) error {
	var out any
	if err := f.do(cmd, method, path, body, &out); err != nil {
		return err
	}
	return printJSON(cmd.OutOrStdout(), out)
}

// callList calls a management API list and prints its items.
func (f *clientFlags) callList(cmd *cobra.Command, path string) error {
	var out struct {
		Value []any `json:"value"`
	}
	if err := f.do(cmd, http.MethodGet, path, nil, &out); err != nil {
		return err
	}
	return printJSON(cmd.OutOrStdout(), out.Value)
}

func vaultShowCommand(f *clientFlags, name *string) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Show a vault's properties and access policies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := f.mgmt(cmd.Context())
			if err != nil {
				return err
			}
			var v vaultDoc
			if err := m.do(cmd.Context(), http.MethodGet, "/management/vaults/"+*name, nil, &v); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v)
		},
	}
}

func setPolicyCommand(f *clientFlags, name *string) *cobra.Command {
	var p authz.AccessPolicy
	cmd := &cobra.Command{
		Use:   "set-policy",
		Short: "Grant a principal permissions, as az keyvault set-policy",
		Long: "Sets the permissions of the kinds given for the principal; kinds not\n" +
			"given keep what the principal had.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := f.mgmt(cmd.Context())
			if err != nil {
				return err
			}
			if p.TenantID == "" {
				p.TenantID = m.creds.TenantID
			}
			var v vaultDoc
			path := "/management/vaults/" + *name
			if err := m.do(cmd.Context(), http.MethodGet, path, nil, &v); err != nil {
				return err
			}
			p = keepUnset(cmd, v.Properties.AccessPolicies, p)
			body := map[string]any{"properties": map[string]any{"accessPolicies": []authz.AccessPolicy{p}}}
			if err := m.do(cmd.Context(), http.MethodPut, path+"/accessPolicies/replace", body, &v); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&p.ObjectID, "object-id", "", "object id of the principal (required)")
	fl.StringVar(&p.TenantID, "tenant-id", "", "tenant of the principal (default: the credentials' tenant)")
	fl.StringSliceVar(&p.Permissions.Secrets, "secret-permissions", nil, "e.g. get,list")
	fl.StringSliceVar(&p.Permissions.Certificates, "certificate-permissions", nil, "e.g. get,list")
	fl.StringSliceVar(&p.Permissions.Keys, "key-permissions", nil, "e.g. get")
	cmd.MarkFlagRequired("object-id")
	return cmd
}

// keepUnset fills the permission kinds not given on the command line from
// the principal's existing entry.
func keepUnset(cmd *cobra.Command, existing []authz.AccessPolicy, p authz.AccessPolicy) authz.AccessPolicy {
	for _, q := range existing {
		if q.TenantID != p.TenantID || q.ObjectID != p.ObjectID {
			continue
		}
		if !cmd.Flags().Changed("secret-permissions") {
			p.Permissions.Secrets = q.Permissions.Secrets
		}
		if !cmd.Flags().Changed("certificate-permissions") {
			p.Permissions.Certificates = q.Permissions.Certificates
		}
		if !cmd.Flags().Changed("key-permissions") {
			p.Permissions.Keys = q.Permissions.Keys
		}
	}
	return p
}

func deletePolicyCommand(f *clientFlags, name *string) *cobra.Command {
	var p authz.AccessPolicy
	cmd := &cobra.Command{
		Use:   "delete-policy",
		Short: "Remove a principal's access policy, as az keyvault delete-policy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := f.mgmt(cmd.Context())
			if err != nil {
				return err
			}
			if p.TenantID == "" {
				p.TenantID = m.creds.TenantID
			}
			var v vaultDoc
			body := map[string]any{"properties": map[string]any{"accessPolicies": []authz.AccessPolicy{p}}}
			if err := m.do(cmd.Context(), http.MethodPut, "/management/vaults/"+*name+"/accessPolicies/remove", body, &v); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v)
		},
	}
	cmd.Flags().StringVar(&p.ObjectID, "object-id", "", "object id of the principal (required)")
	cmd.Flags().StringVar(&p.TenantID, "tenant-id", "", "tenant of the principal (default: the credentials' tenant)")
	cmd.MarkFlagRequired("object-id")
	return cmd
}
