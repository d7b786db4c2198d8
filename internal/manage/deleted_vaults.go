package manage

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keygate/keygate/internal/vault"
)

// deletedVaultJSON is Azure's DeletedVault. Its id and vaultId are the
// management paths of the deleted vault and of the vault it was.
type deletedVaultJSON struct {
	ID         string                 `json:"id"`
	Name       string                 `json:"name"`
	Type       string                 `json:"type"`
	Properties deletedVaultProperties `json:"properties"`
}

// deletedVaultProperties are Azure's DeletedVaultProperties.
type deletedVaultProperties struct {
	VaultID                string            `json:"vaultId"`
	Location               string            `json:"location,omitempty"`
	DeletionDate           time.Time         `json:"deletionDate"`
	ScheduledPurgeDate     time.Time         `json:"scheduledPurgeDate"`
	Tags                   map[string]string `json:"tags"`
	PurgeProtectionEnabled bool              `json:"purgeProtectionEnabled"`
}

func deletedToJSON(d *vault.DeletedVault) deletedVaultJSON {
	return deletedVaultJSON{
		ID:   "/management/deletedVaults/" + d.Vault.Name,
		Name: d.Vault.Name,
		Type: "Microsoft.KeyVault/deletedVaults",
		Properties: deletedVaultProperties{
			VaultID:                vaultID(d.Vault.Name),
			Location:               d.Vault.Location,
			DeletionDate:           d.DeletionDate.UTC(),
			ScheduledPurgeDate:     d.ScheduledPurgeDate.UTC(),
			Tags:                   tagsOrEmpty(d.Vault.Tags),
			PurgeProtectionEnabled: d.Vault.EnablePurgeProtection,
		},
	}
}

func (h *Handler) listDeletedVaults(w http.ResponseWriter, r *http.Request, _ *request) error {
	deleted, err := h.vaults.ListDeletedVaults(r.Context())
	if err != nil {
		return err
	}
	out := make([]deletedVaultJSON, 0, len(deleted))
	for _, d := range deleted {
		out = append(out, deletedToJSON(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (h *Handler) getDeletedVault(w http.ResponseWriter, r *http.Request, _ *request) error {
	d, err := h.vaults.DeletedVault(r.Context(), vaultName(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deletedToJSON(d))
	return nil
}

// purgeDeletedVault removes a deleted vault for good and answers with it
// as it was (Azure answers with no body; a body tells the caller what
// went).
func (h *Handler) purgeDeletedVault(w http.ResponseWriter, r *http.Request, req *request) error {
	name := vaultName(r)
	d, err := h.vaults.PurgeDeletedVault(r.Context(), name)
	if err != nil {
		return err
	}
	h.log.Info("deleted vault purged", "vault", name, "by", req.caller.ObjectID)
	writeJSON(w, http.StatusOK, deletedToJSON(d))
	return nil
}

// recoverVault brings a deleted vault back, as a PUT with
// properties.createMode recover asks, and sets the properties given.
func (h *Handler) recoverVault(w http.ResponseWriter, r *http.Request, req *request, name string, p vault.VaultProperties) error {
	v, err := h.vaults.RecoverVault(r.Context(), name, p)
	if errors.Is(err, vault.ErrNotFound) || errors.Is(err, vault.ErrConflict) {
		// Nothing to recover: say which field asked for it.
		return fmt.Errorf("properties.createMode: recover: %w", err)
	}
	if err != nil {
		return err
	}
	h.log.Info("vault recovered", "vault", name, "by", req.caller.ObjectID)
	writeJSON(w, http.StatusOK, h.toJSON(v))
	return nil
}
