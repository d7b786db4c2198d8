package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/authz"
)

// vaultPath is the management path of the vault called name.
func vaultPath(name string) string {
	return "/management/vaults/" + url.PathEscape(strings.ToLower(name))
}

// propertyFlags are the vault properties create and update set; only the
// flags given are sent.
type propertyFlags struct {
	retentionDays   int
	templateDeploy  bool
	defaultAction   string
	bypass          string
	purgeProtection bool
}

func (p *propertyFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVar(&p.retentionDays, "retention-days", 90, "soft-delete retention, 7 to 90 days")
	fl.BoolVar(&p.templateDeploy, "enabled-for-template-deployment", false, "set enabledForTemplateDeployment")
	fl.StringVar(&p.defaultAction, "default-action", "", "network rules' default action: Allow or Deny")
	fl.StringVar(&p.bypass, "bypass", "", "network rules' bypass: AzureServices (keygate's own services) or None")
	fl.BoolVar(&p.purgeProtection, "enable-purge-protection", false,
		"refuse purges before the scheduled purge date; once on, it cannot be turned off")
}

// body returns the vault request with the properties whose flags were
// given, and the current network rules (acls) changed as asked.
func (p *propertyFlags) body(cmd *cobra.Command, acls authz.NetworkACLs) map[string]any {
	props := map[string]any{}
	fl := cmd.Flags()
	if fl.Changed("retention-days") {
		props["softDeleteRetentionInDays"] = p.retentionDays
	}
	if fl.Changed("enabled-for-template-deployment") {
		props["enabledForTemplateDeployment"] = p.templateDeploy
	}
	if fl.Changed("enable-purge-protection") {
		props["enablePurgeProtection"] = p.purgeProtection
	}
	if fl.Changed("default-action") || fl.Changed("bypass") {
		if fl.Changed("default-action") {
			acls.DefaultAction = p.defaultAction
		}
		if fl.Changed("bypass") {
			acls.Bypass = p.bypass
		}
		props["networkAcls"] = acls
	}
	return map[string]any{"properties": props}
}

func vaultCreateCommand(f *clientFlags, name *string) *cobra.Command {
	var p propertyFlags
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a vault, served at its own host name (see README.md)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := f.mgmt(cmd.Context())
			if err != nil {
				return err
			}
			body := p.body(cmd, authz.NetworkACLs{DefaultAction: authz.ActionAllow, Bypass: authz.BypassAzureServices})
			// The creator may use the vault it made, as on Azure.
			if sp, ok := creatorPolicy(m); ok {
				body["properties"].(map[string]any)["accessPolicies"] = []authz.AccessPolicy{sp}
			}
			var v vaultDoc
			if err := m.do(cmd.Context(), http.MethodPut, vaultPath(*name), body, &v); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v)
		},
	}
	p.register(cmd)
	return cmd
}

// creatorPolicy grants the credentials' principal every permission; false
// when its object id cannot be read from its token.
func creatorPolicy(m *mgmt) (authz.AccessPolicy, bool) {
	oid := m.objectID()
	return authz.AccessPolicy{TenantID: m.creds.TenantID, ObjectID: oid, Permissions: authz.Permissions{
		Keys: []string{authz.PermissionAll}, Secrets: []string{authz.PermissionAll},
		Certificates: []string{authz.PermissionAll},
	}}, oid != ""
}

func vaultUpdateCommand(f *clientFlags, name *string) *cobra.Command {
	var p propertyFlags
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Change a vault's retention, template deployment flag or network rules' defaults",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := f.mgmt(cmd.Context())
			if err != nil {
				return err
			}
			var v vaultDoc
			if err := m.do(cmd.Context(), http.MethodGet, vaultPath(*name), nil, &v); err != nil {
				return err
			}
			if err := m.do(cmd.Context(), http.MethodPatch, vaultPath(*name), p.body(cmd, v.Properties.NetworkACLs), &v); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v)
		},
	}
	p.register(cmd)
	return cmd
}

func vaultListCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List vaults",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.callList(cmd, "/management/vaults")
		},
	}
}

func vaultDeleteCommand(f *clientFlags, name *string) *cobra.Command {
	return &cobra.Command{
		Use:   "delete",
		Short: "Soft-delete a vault: it serves nothing, and is recoverable until its scheduled purge date",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(cmd, http.MethodDelete, vaultPath(*name), nil)
		},
	}
}

// deletedVaultPath is the management path of the deleted vault called
// name.
func deletedVaultPath(name string) string {
	return "/management/deletedVaults/" + url.PathEscape(strings.ToLower(name))
}

// namedVault is the vault a command about deleted vaults acts on: its
// argument, or --name. The default --name is no use here, since the
// default vault cannot be deleted, so one of the two is required.
func namedVault(cmd *cobra.Command, args []string, name *string) (string, error) {
	switch {
	case len(args) == 1:
		return args[0], nil
	case cmd.Flags().Changed("name"):
		return *name, nil
	}
	return "", fmt.Errorf("name the vault: %s NAME", cmd.CommandPath())
}

func vaultRecoverCommand(f *clientFlags, name *string) *cobra.Command {
	return &cobra.Command{
		Use:   "recover NAME",
		Short: "Recover a deleted vault with everything it had, as createMode recover",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := namedVault(cmd, args, name)
			if err != nil {
				return err
			}
			body := map[string]any{"properties": map[string]any{"createMode": "recover"}}
			return f.call(cmd, http.MethodPut, vaultPath(n), body)
		},
	}
}

func deletedVaultCommand(f *clientFlags, name *string) *cobra.Command {
	cmd := &cobra.Command{Use: "deleted", Short: "List, show and purge soft-deleted vaults"}
	list := &cobra.Command{
		Use: "list", Short: "List deleted vaults with their scheduled purge dates", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.callList(cmd, "/management/deletedVaults")
		},
	}
	show := &cobra.Command{
		Use: "show NAME", Short: "Show a deleted vault", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := namedVault(cmd, args, name)
			if err != nil {
				return err
			}
			return f.call(cmd, http.MethodGet, deletedVaultPath(n), nil)
		},
	}
	purge := &cobra.Command{
		Use:   "purge NAME",
		Short: "Remove a deleted vault and everything in it for good, freeing its name",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := namedVault(cmd, args, name)
			if err != nil {
				return err
			}
			return f.call(cmd, http.MethodPost, deletedVaultPath(n)+"/purge", nil)
		},
	}
	cmd.AddCommand(list, show, purge)
	return cmd
}

func assignRoleCommand(f *clientFlags, name *string) *cobra.Command {
	var oid, role string
	cmd := &cobra.Command{
		Use:   "assign-role",
		Short: `Grant an Azure role's shorthand; "Key Vault Secrets User" is get on secrets`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{"properties": map[string]any{"roleDefinitionId": role, "principalId": oid}}
			return f.call(cmd, http.MethodPost, vaultPath(*name)+"/roleAssignments", body)
		},
	}
	cmd.Flags().StringVar(&oid, "object-id", "", "principal (object) id to grant the role (required)")
	cmd.Flags().StringVar(&role, "role", authz.RoleSecretsUser, "role name or definition id")
	cmd.MarkFlagRequired("object-id")
	return cmd
}

func networkRuleCommand(f *clientFlags, name *string) *cobra.Command {
	cmd := &cobra.Command{Use: "network-rule", Short: "Manage a vault's IP rules, as az keyvault network-rule"}
	change := func(op, short string) *cobra.Command {
		var addrs []string
		c := &cobra.Command{
			Use: op, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				rules := make([]authz.IPRule, len(addrs))
				for i, a := range addrs {
					rules[i] = authz.IPRule{Value: a}
				}
				return f.call(cmd, http.MethodPost, vaultPath(*name)+"/networkRules/"+op, map[string]any{"ipRules": rules})
			},
		}
		c.Flags().StringSliceVar(&addrs, "ip-address", nil, "IPv4 or IPv6 addresses or CIDR ranges (required)")
		c.MarkFlagRequired("ip-address")
		return c
	}
	list := &cobra.Command{
		Use: "list", Short: "Show a vault's network rules", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(cmd, http.MethodGet, vaultPath(*name)+"/networkRules", nil)
		},
	}
	cmd.AddCommand(change("add", "Allow addresses or ranges"), change("remove", "Remove addresses or ranges"), list)
	return cmd
}

// objectID is the caller's object id, read from its own token: the
// management API's answer would say the same, one round trip later.
func (m *mgmt) objectID() string {
	parts := strings.Split(m.token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		OID string `json:"oid"`
	}
	json.Unmarshal(payload, &claims)
	return claims.OID
}
