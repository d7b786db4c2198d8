package authz

import (
	"fmt"
	"strings"
)

// Azure RBAC roles that keygate accepts as shorthands for access-policy
// grants. keygate's vaults use the access-policy model only; a role
// assignment is translated into the grant the role stands for and stored
// as an access policy, so there is one place to read who may do what.
const (
	// RoleSecretsUser is "Key Vault Secrets User": reading secret values,
	// which is what a gateway needs to fetch certificates with their keys.
	RoleSecretsUser = "Key Vault Secrets User"

	// RoleSecretsUserID is the role's definition id in every Azure tenant.
	RoleSecretsUserID = "4633458b-17de-408a-b874-0445c86b69e6"
)

// RolePermissions returns the grant that an Azure role stands for. role is
// the role's name (case-insensitive), its definition id, or a full role
// definition resource id ending in that id
// (/subscriptions/.../providers/Microsoft.Authorization/roleDefinitions/ID).
//
// "Key Vault Secrets User" is exactly get on secrets: Azure's role also
// reads secret metadata, which keygate's access policies call list, and
// keygate grants no more than the issue of a certificate to a gateway
// needs. Grant list separately where it is wanted.
func RolePermissions(role string) (Permissions, error) {
	id := role
	if i := strings.LastIndex(role, "/"); i >= 0 && strings.Contains(strings.ToLower(role), "/roledefinitions/") {
		id = role[i+1:]
	}
	switch {
	case strings.EqualFold(role, RoleSecretsUser), strings.EqualFold(id, RoleSecretsUserID):
		return Permissions{Secrets: []string{SecretGet}}, nil
	}
	return Permissions{}, fmt.Errorf("role %q is not one keygate knows; it accepts %q (%s)",
		truncate(role, 120), RoleSecretsUser, RoleSecretsUserID)
}
