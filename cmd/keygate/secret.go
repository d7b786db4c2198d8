package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/spf13/cobra"
)

func secretCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{Use: "secret", Short: "Manage secrets, as az keyvault secret does"}
	f.register(cmd)
	cmd.AddCommand(
		secretSetCommand(&f), secretShowCommand(&f), secretListCommand(&f),
		secretListVersionsCommand(&f), secretListDeletedCommand(&f),
		secretNameCommand(&f, "delete", "Soft-delete a secret", deleteSecret),
		secretNameCommand(&f, "recover", "Recover a soft-deleted secret", recoverSecret),
		secretNameCommand(&f, "purge", "Permanently remove a soft-deleted secret", purgeSecret),
		secretBackupCommand(&f), secretRestoreCommand(&f),
	)
	return cmd
}

func secretSetCommand(f *clientFlags) *cobra.Command {
	var name, value, file, contentType string
	var tagList []string
	var disabled bool
	cmd := &cobra.Command{
		Use:   "set",
		Short: "Store a new version of a secret",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := valueFrom(value, file, cmd.Flags().Changed("value"))
			if err != nil {
				return err
			}
			t, err := parseTags(tagList)
			if err != nil {
				return err
			}
			c, err := f.secrets()
			if err != nil {
				return err
			}
			params := azsecrets.SetSecretParameters{Value: &v, Tags: t}
			if contentType != "" {
				params.ContentType = &contentType
			}
			if disabled {
				params.SecretAttributes = &azsecrets.SecretAttributes{Enabled: to.Ptr(false)}
			}
			resp, err := c.SetSecret(cmd.Context(), name, params, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), fromSecret(resp.Secret))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&name, "name", "", "secret name (required)")
	fl.StringVar(&value, "value", "", "secret value")
	fl.StringVar(&file, "file", "", "read the value from this file instead")
	fl.StringVar(&contentType, "content-type", "", "content type, e.g. text/plain")
	fl.StringSliceVar(&tagList, "tags", nil, "tags as key=value, comma separated")
	fl.BoolVar(&disabled, "disabled", false, "store the version disabled")
	cmd.MarkFlagRequired("name")
	return cmd
}

// valueFrom takes the value from --value or --file, exactly one of them.
func valueFrom(value, file string, valueSet bool) (string, error) {
	switch {
	case valueSet && file != "":
		return "", errors.New("give --value or --file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--file: %w", err)
		}
		return string(b), nil
	case valueSet:
		return value, nil
	}
	return "", errors.New("give the value with --value or --file")
}

func parseTags(list []string) (map[string]*string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := make(map[string]*string, len(list))
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("--tags: %q is not key=value", kv)
		}
		out[k] = to.Ptr(v)
	}
	return out, nil
}

func secretShowCommand(f *clientFlags) *cobra.Command {
	var name, version string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a secret with its value",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.secrets()
			if err != nil {
				return err
			}
			resp, err := c.GetSecret(cmd.Context(), name, version, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), fromSecret(resp.Secret))
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "secret name (required)")
	cmd.Flags().StringVar(&version, "version", "", "version (default: the current one)")
	cmd.MarkFlagRequired("name")
	return cmd
}

func secretListCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List secrets (without values)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.secrets()
			if err != nil {
				return err
			}
			return printPages(cmd, c.NewListSecretPropertiesPager(nil),
				func(p azsecrets.ListSecretPropertiesResponse) []*azsecrets.SecretProperties { return p.Value },
				fromProperties)
		},
	}
}

func secretListVersionsCommand(f *clientFlags) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "list-versions",
		Short: "List the versions of a secret",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.secrets()
			if err != nil {
				return err
			}
			return printPages(cmd, c.NewListSecretPropertiesVersionsPager(name, nil),
				func(p azsecrets.ListSecretPropertiesVersionsResponse) []*azsecrets.SecretProperties { return p.Value },
				fromProperties)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "secret name (required)")
	cmd.MarkFlagRequired("name")
	return cmd
}

func secretListDeletedCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list-deleted",
		Short: "List soft-deleted secrets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.secrets()
			if err != nil {
				return err
			}
			return printPages(cmd, c.NewListDeletedSecretPropertiesPager(nil),
				func(p azsecrets.ListDeletedSecretPropertiesResponse) []*azsecrets.DeletedSecretProperties {
					return p.Value
				},
				fromDeletedProperties)
		},
	}
}

// printPages follows every page of pager and prints all items as one JSON
// array.
func printPages[P, T any](cmd *cobra.Command, pager *runtime.Pager[P], items func(P) []T, show func(T) secretOut) error {
	out := []secretOut{}
	for pager.More() {
		page, err := pager.NextPage(cmd.Context())
		if err != nil {
			return err
		}
		for _, it := range items(page) {
			out = append(out, show(it))
		}
	}
	return printJSON(cmd.OutOrStdout(), out)
}

// nameOp is an operation on one secret by name that prints its result.
type nameOp func(cmd *cobra.Command, c *azsecrets.Client, name string) error

func secretNameCommand(f *clientFlags, use, short string, op nameOp) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.secrets()
			if err != nil {
				return err
			}
			return op(cmd, c, name)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "secret name (required)")
	cmd.MarkFlagRequired("name")
	return cmd
}

func deleteSecret(cmd *cobra.Command, c *azsecrets.Client, name string) error {
	resp, err := c.DeleteSecret(cmd.Context(), name, nil)
	if err != nil {
		return err
	}
	return printJSON(cmd.OutOrStdout(), fromDeleted(resp.DeletedSecret))
}

func recoverSecret(cmd *cobra.Command, c *azsecrets.Client, name string) error {
	resp, err := c.RecoverDeletedSecret(cmd.Context(), name, nil)
	if err != nil {
		return err
	}
	return printJSON(cmd.OutOrStdout(), fromSecret(resp.Secret))
}

func purgeSecret(cmd *cobra.Command, c *azsecrets.Client, name string) error {
	_, err := c.PurgeDeletedSecret(cmd.Context(), name, nil)
	return err
}

func secretBackupCommand(f *clientFlags) *cobra.Command {
	var name, file string
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Write an encrypted backup of a secret to a file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.secrets()
			if err != nil {
				return err
			}
			resp, err := c.BackupSecret(cmd.Context(), name, nil)
			if err != nil {
				return err
			}
			return os.WriteFile(file, resp.Value, 0o600)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "secret name (required)")
	cmd.Flags().StringVar(&file, "file", "", "backup file to write (required)")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("file")
	return cmd
}

func secretRestoreCommand(f *clientFlags) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a secret from a backup file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			blob, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("--file: %w", err)
			}
			c, err := f.secrets()
			if err != nil {
				return err
			}
			resp, err := c.RestoreSecret(cmd.Context(), azsecrets.RestoreSecretParameters{SecretBackup: blob}, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), fromSecret(resp.Secret))
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "backup file (required)")
	cmd.MarkFlagRequired("file")
	return cmd
}
