package manage

import (
	"net/http"
	"slices"
	"strings"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/vault"
)

// vaultJSON is a vault as Azure's resource shows it. Its id is its path
// in the management API.
type vaultJSON struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location,omitempty"`
	Tags       map[string]string `json:"tags"`
	Properties vaultProperties   `json:"properties"`
}

// vaultProperties are a vault's properties as Azure names them.
type vaultProperties struct {
	TenantID                     string               `json:"tenantId"`
	VaultURI                     string               `json:"vaultUri,omitempty"`
	AccessPolicies               []authz.AccessPolicy `json:"accessPolicies"`
	EnableSoftDelete             bool                 `json:"enableSoftDelete"`
	SoftDeleteRetentionInDays    int                  `json:"softDeleteRetentionInDays"`
	EnabledForTemplateDeployment bool                 `json:"enabledForTemplateDeployment"`
	NetworkACLs                  authz.NetworkACLs    `json:"networkAcls"`
	EnablePurgeProtection        bool                 `json:"enablePurgeProtection"`
}

// vaultID is the id of the vault called name: its management path.
func vaultID(name string) string { return "/management/vaults/" + name }

// tagsOrEmpty shows absent tags as {}, as Azure does.
func tagsOrEmpty(tags map[string]string) map[string]string {
	if tags == nil {
		return map[string]string{}
	}
	return tags
}

func (h *Handler) toJSON(v *vault.Vault) vaultJSON {
	policies := v.AccessPolicies
	if policies == nil {
		policies = []authz.AccessPolicy{}
	}
	acls := v.NetworkACLs
	if acls.DefaultAction == "" {
		acls, _ = acls.Normalize() // a vault stored before network rules existed
	}
	if acls.IPRules == nil {
		acls.IPRules = []authz.IPRule{}
	}
	return vaultJSON{
		ID:       vaultID(v.Name),
		Name:     v.Name,
		Type:     "Microsoft.KeyVault/vaults",
		Location: v.Location,
		Tags:     tagsOrEmpty(v.Tags),
		Properties: vaultProperties{
			TenantID:                     v.TenantID,
			VaultURI:                     h.vaultURL(v.Name),
			AccessPolicies:               policies,
			EnableSoftDelete:             v.EnableSoftDelete,
			SoftDeleteRetentionInDays:    v.SoftDeleteRetentionInDays,
			EnabledForTemplateDeployment: v.EnabledForTemplateDeployment,
			NetworkACLs:                  acls,
			EnablePurgeProtection:        v.EnablePurgeProtection,
		},
	}
}

// vaultName reads the vault's name from the path: vault names are host
// name labels, so they compare without regard to case.
func vaultName(r *http.Request) string { return strings.ToLower(r.PathValue("vault")) }

func (h *Handler) listVaults(w http.ResponseWriter, r *http.Request, _ *request) error {
	names, err := h.vaults.VaultNames(r.Context())
	if err != nil {
		return err
	}
	out := make([]vaultJSON, 0, len(names))
	for _, n := range names {
		v, err := h.vaults.Vault(r.Context(), n)
		if err != nil {
			return err
		}
		out = append(out, h.toJSON(v))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (h *Handler) getVault(w http.ResponseWriter, r *http.Request, _ *request) error {
	v, err := h.vaults.Vault(r.Context(), vaultName(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h.toJSON(v))
	return nil
}

// vaultRequest is Azure's VaultCreateOrUpdateParameters and
// VaultPatchParameters, with the properties keygate has. location and
// tags are kept for the caller's bookkeeping; sku is accepted so that
// bodies written for Azure work, and ignored. createMode recover brings a
// deleted vault back.
type vaultRequest struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		TenantID                     string                         `json:"tenantId"`
		SKU                          *struct{ Family, Name string } `json:"sku"`
		AccessPolicies               *[]authz.AccessPolicy          `json:"accessPolicies"`
		EnableSoftDelete             *bool                          `json:"enableSoftDelete"`
		SoftDeleteRetentionInDays    *int                           `json:"softDeleteRetentionInDays"`
		EnabledForTemplateDeployment *bool                          `json:"enabledForTemplateDeployment"`
		NetworkACLs                  *authz.NetworkACLs             `json:"networkAcls"`
		EnablePurgeProtection        *bool                          `json:"enablePurgeProtection"`
		CreateMode                   string                         `json:"createMode"`
	} `json:"properties"`
}

// properties returns the domain's view of the request, checking the
// tenant: a vault belongs to the authority's tenant.
func (h *Handler) properties(req *vaultRequest) (vault.VaultProperties, error) {
	p := req.Properties
	if p.TenantID != "" && !strings.EqualFold(p.TenantID, h.identities.TenantID()) {
		return vault.VaultProperties{}, badRequest("properties.tenantId: %q is not this server's tenant %s",
			truncate(p.TenantID, 40), h.identities.TenantID())
	}
	return vault.VaultProperties{
		AccessPolicies:               p.AccessPolicies,
		EnableSoftDelete:             p.EnableSoftDelete,
		SoftDeleteRetentionInDays:    p.SoftDeleteRetentionInDays,
		EnabledForTemplateDeployment: p.EnabledForTemplateDeployment,
		NetworkACLs:                  p.NetworkACLs,
		EnablePurgeProtection:        p.EnablePurgeProtection,
		Location:                     &req.Location,
		Tags:                         tagsOrNil(req.Tags),
	}, nil
}

// tagsOrNil is nil for tags the request left out, so that they are kept.
func tagsOrNil(tags map[string]string) *map[string]string {
	if tags == nil {
		return nil
	}
	return &tags
}

// putVault creates the vault (201), or updates the properties the body
// gives on an existing one (200). Without a body it creates a vault with
// Azure's defaults. With properties.createMode recover it recovers the
// deleted vault of that name (200) and sets the properties given.
func (h *Handler) putVault(w http.ResponseWriter, r *http.Request, req *request) error {
	var body vaultRequest
	if err := decodeOptional(w, r, &body); err != nil {
		return err
	}
	p, err := h.properties(&body)
	if err != nil {
		return err
	}
	name := vaultName(r)
	switch strings.ToLower(body.Properties.CreateMode) {
	case "", "default":
	case "recover":
		req.rec.Operation = "VaultRecover"
		return h.recoverVault(w, r, req, name, p)
	default:
		return badRequest("properties.createMode: %q is not one of default, recover", truncate(body.Properties.CreateMode, 40))
	}
	if _, err := h.vaults.Vault(r.Context(), name); err == nil {
		return h.updateVault(w, r, req, name, p)
	}
	if slices.Contains(h.reserved, name) {
		return badRequest("vault name: %q addresses the default vault at this server's host name; choose another", name)
	}
	v, err := h.vaults.CreateVault(r.Context(), name, h.identities.TenantID(), p)
	if err != nil {
		return err
	}
	h.log.Info("vault created", "vault", name, "by", req.caller.ObjectID)
	writeJSON(w, http.StatusCreated, h.toJSON(v))
	return nil
}

func (h *Handler) patchVault(w http.ResponseWriter, r *http.Request, req *request) error {
	var body vaultRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	p, err := h.properties(&body)
	if err != nil {
		return err
	}
	return h.updateVault(w, r, req, vaultName(r), p)
}

func (h *Handler) updateVault(w http.ResponseWriter, r *http.Request, req *request, name string, p vault.VaultProperties) error {
	v, err := h.vaults.UpdateVault(r.Context(), name, p)
	if err != nil {
		return err
	}
	h.log.Info("vault updated", "vault", name, "by", req.caller.ObjectID)
	writeJSON(w, http.StatusOK, h.toJSON(v))
	return nil
}

// deleteVault soft-deletes the vault and answers with it as it was.
func (h *Handler) deleteVault(w http.ResponseWriter, r *http.Request, req *request) error {
	name := vaultName(r)
	d, err := h.vaults.DeleteVault(r.Context(), name)
	if err != nil {
		return err
	}
	h.log.Info("vault deleted", "vault", name, "scheduled_purge_date", d.ScheduledPurgeDate,
		"by", req.caller.ObjectID)
	writeJSON(w, http.StatusOK, h.toJSON(&d.Vault))
	return nil
}

// policiesRequest is Azure's VaultAccessPolicyParameters.
type policiesRequest struct {
	Properties struct {
		AccessPolicies []authz.AccessPolicy `json:"accessPolicies"`
	} `json:"properties"`
}

// updatePolicies changes access policies as Azure's accessPolicies
// operation does: add merges the permissions given into the principal's
// entry, replace sets the entry to exactly them, and remove deletes the
// principal's entry.
func (h *Handler) updatePolicies(w http.ResponseWriter, r *http.Request, req *request) error {
	op := r.PathValue("operation")
	if !slices.Contains([]string{"add", "replace", "remove"}, op) {
		return badRequest("operation: %q is not one of add, replace, remove", op)
	}
	var body policiesRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if len(body.Properties.AccessPolicies) == 0 {
		return badRequest("properties.accessPolicies: at least one entry is required")
	}
	name := vaultName(r)
	var (
		v   *vault.Vault
		err error
	)
	for _, p := range body.Properties.AccessPolicies {
		v, err = h.applyPolicy(r, name, op, p)
		if err != nil {
			return err
		}
		h.log.Info("access policy changed", "vault", name, "operation", op,
			"object_id", p.ObjectID, "by", req.caller.ObjectID)
	}
	if len(body.Properties.AccessPolicies) == 1 {
		req.rec.ObjectName = body.Properties.AccessPolicies[0].ObjectID
	}
	writeJSON(w, http.StatusOK, h.toJSON(v))
	return nil
}

func (h *Handler) applyPolicy(r *http.Request, name, op string, p authz.AccessPolicy) (*vault.Vault, error) {
	ctx := r.Context()
	switch op {
	case "remove":
		return h.vaults.DeleteAccessPolicy(ctx, name, p.TenantID, p.ObjectID)
	case "add":
		v, err := h.vaults.Vault(ctx, name)
		if err != nil {
			return nil, err
		}
		p = merged(v.AccessPolicies, p)
	}
	return h.vaults.SetAccessPolicy(ctx, name, p)
}

// merged adds the permissions of the existing entry for p's principal to p.
func merged(existing []authz.AccessPolicy, p authz.AccessPolicy) authz.AccessPolicy {
	for _, q := range existing {
		if q.TenantID == p.TenantID && q.ObjectID == p.ObjectID {
			p.Permissions.Keys = union(q.Permissions.Keys, p.Permissions.Keys)
			p.Permissions.Secrets = union(q.Permissions.Secrets, p.Permissions.Secrets)
			p.Permissions.Certificates = union(q.Permissions.Certificates, p.Permissions.Certificates)
		}
	}
	return p
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.ContainsFunc(out, func(t string) bool { return strings.EqualFold(s, t) }) {
			out = append(out, s)
		}
	}
	return out
}

// roleAssignmentRequest is Azure's RoleAssignmentCreateParameters, scoped
// to the vault: roleDefinitionId may be the role's full resource id, its
// GUID, or its name.
type roleAssignmentRequest struct {
	Properties struct {
		RoleDefinitionID string `json:"roleDefinitionId"`
		PrincipalID      string `json:"principalId"`
		PrincipalType    string `json:"principalType"`
		TenantID         string `json:"tenantId"`
	} `json:"properties"`
}

// assignRole grants the principal what the role stands for, added to its
// access policy (see authz.RolePermissions).
func (h *Handler) assignRole(w http.ResponseWriter, r *http.Request, req *request) error {
	var body roleAssignmentRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	p := body.Properties
	if strings.TrimSpace(p.PrincipalID) == "" {
		return badRequest("properties.principalId: must not be empty")
	}
	perms, err := authz.RolePermissions(p.RoleDefinitionID)
	if err != nil {
		return badRequest("properties.roleDefinitionId: %v", err)
	}
	if p.TenantID == "" {
		p.TenantID = h.identities.TenantID()
	}
	req.rec.ObjectName = p.PrincipalID
	v, err := h.applyPolicy(r, vaultName(r), "add",
		authz.AccessPolicy{TenantID: p.TenantID, ObjectID: p.PrincipalID, Permissions: perms})
	if err != nil {
		return err
	}
	h.log.Info("role assigned", "vault", v.Name, "role", p.RoleDefinitionID, "object_id", p.PrincipalID,
		"by", req.caller.ObjectID)
	writeJSON(w, http.StatusOK, h.toJSON(v))
	return nil
}

func (h *Handler) listNetworkRules(w http.ResponseWriter, r *http.Request, _ *request) error {
	v, err := h.vaults.Vault(r.Context(), vaultName(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h.toJSON(v).Properties.NetworkACLs)
	return nil
}

// networkRulesRequest lists IP rules to add or remove.
type networkRulesRequest struct {
	IPRules []authz.IPRule `json:"ipRules"`
}

// updateNetworkRules adds or removes IP rules, as `az keyvault
// network-rule add` and `remove` do; the default action and bypass are
// changed with PATCH.
func (h *Handler) updateNetworkRules(w http.ResponseWriter, r *http.Request, req *request) error {
	op := r.PathValue("operation")
	if op != "add" && op != "remove" {
		return badRequest("operation: %q is not one of add, remove", op)
	}
	var body networkRulesRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if len(body.IPRules) == 0 {
		return badRequest("ipRules: at least one rule is required")
	}
	rules := make([]string, len(body.IPRules))
	for i, rule := range body.IPRules {
		rules[i] = rule.Value
	}
	name := vaultName(r)
	var (
		v   *vault.Vault
		err error
	)
	if op == "add" {
		v, err = h.vaults.AddIPRules(r.Context(), name, rules)
	} else {
		v, err = h.vaults.RemoveIPRules(r.Context(), name, rules)
	}
	if err != nil {
		return err
	}
	req.rec.ObjectName = strings.Join(rules, ",")
	h.log.Info("network rules changed", "vault", name, "operation", op, "rules", rules, "by", req.caller.ObjectID)
	writeJSON(w, http.StatusOK, h.toJSON(v).Properties.NetworkACLs)
	return nil
}
