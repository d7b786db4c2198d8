package main

import (
	"encoding/base64"
	"encoding/json"
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
	retentionDays  int
	templateDeploy bool
	defaultAction  string
	bypass         string
}

func (p *propertyFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVar(&p.retentionDays, "retention-days", 90, "soft-delete retention, 7 to 90 days")
	fl.BoolVar(&p.templateDeploy, "enabled-for-template-deployment", false, "set enabledForTemplateDeployment")
	fl.StringVar(&p.defaultAction, "default-action", "", "network rules' default action: Allow or Deny")
	fl.StringVar(&p.bypass, "bypass", "", "network rules' bypass: AzureServices (keygate's own services) or None")
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
		Short: "Delete a vault and everything in it, for good",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(cmd, http.MethodDelete, vaultPath(*name), nil)
		},
	}
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
