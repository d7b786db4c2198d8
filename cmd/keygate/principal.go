package main

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/client"
)

// principalPath is the management path of the principal with appID.
func principalPath(appID string) string {
	return "/management/servicePrincipals/" + url.PathEscape(appID)
}

// principalDoc is the part of a principal's management document the CLI
// reads.
type principalDoc struct {
	AppID      string `json:"appId"`
	ID         string `json:"id"`
	SecretText string `json:"secretText,omitempty"`
}

func principalCommand(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "sp",
		Aliases: []string{"service-principal"},
		Short:   "Manage service principals: applications that sign in with a secret or a certificate",
		Long: "Service principals are for automation that runs where no identity agent does (a CI\n" +
			"job, a laptop). Grant one access with `keygate vault set-policy --object-id ID`.",
	}
	var appID string
	byID := func(c *cobra.Command) *cobra.Command {
		c.Flags().StringVar(&appID, "app-id", "", "the principal's client id (appId) (required)")
		c.MarkFlagRequired("app-id")
		return c
	}
	cmd.AddCommand(
		principalCreateCommand(f),
		&cobra.Command{Use: "list", Short: "List service principals", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return f.callList(cmd, "/management/servicePrincipals") }},
		byID(&cobra.Command{Use: "show", Short: "Show a service principal", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return f.call(cmd, http.MethodGet, principalPath(appID), nil)
			}}),
		byID(&cobra.Command{Use: "delete", Short: "Delete a service principal", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return f.call(cmd, http.MethodDelete, principalPath(appID), nil)
			}}),
		principalCertCommand(f), principalSecretCommand(f),
	)
	return cmd
}

// credentialsOut is where a new principal's credentials go, as a file
// `--credentials` reads.
type credentialsOut struct {
	out string // the file; empty prints the principal instead
}

func (c *credentialsOut) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.out, "out", "", "write a credentials file for --credentials (mode 0600) instead of printing the secret")
}

// write writes the credentials of the principal p (its secret, or the
// PEM file certFile holding its certificate and key) beside the issuing
// administrator's authority and vault.
func (c *credentialsOut) write(cmd *cobra.Command, f *clientFlags, p principalDoc, certFile string) error {
	admin, err := f.load()
	if err != nil {
		return err
	}
	creds := client.Credentials{TenantID: admin.TenantID, ClientID: p.AppID, ClientSecret: p.SecretText,
		AuthorityHost: admin.AuthorityHost, VaultURL: admin.VaultURL, CAFile: admin.CAFile}
	if p.SecretText == "" {
		abs, err := filepath.Abs(certFile)
		if err != nil {
			return err
		}
		creds.ClientCertificate = abs
	}
	b, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return err
	}
	if err := writeNewFile(c.out, append(b, '\n')); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Service principal %s (object id %s): credentials written to %s\n", p.AppID, p.ID, c.out)
	return nil
}

// writeNewFile writes b to a new file with mode 0600.
func writeNewFile(path string, b []byte) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := fh.Write(b); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// certificateKey reads the first certificate of a PEM file for the
// management API. Only the certificate leaves the machine: a private key
// in the same file is never read into the request.
func certificateKey(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--cert: %w", err)
	}
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("--cert: %s holds no PEM CERTIFICATE block", path)
		}
		if block.Type == "CERTIFICATE" {
			return map[string]string{"key": string(pem.EncodeToMemory(block))}, nil
		}
	}
}

func principalCreateCommand(f *clientFlags) *cobra.Command {
	var (
		name, certFile string
		secret         bool
		out            credentialsOut
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a service principal with a secret, or with a certificate (--cert)",
		Long: "Creates a service principal. With --cert FILE (PEM), it signs in with that\n" +
			"certificate's key and has no secret unless --secret is given too; only the\n" +
			"certificate is sent. Without --cert, it gets a secret, shown once.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{"displayName": name}
			if certFile != "" {
				key, err := certificateKey(certFile)
				if err != nil {
					return err
				}
				body["keyCredentials"] = []any{key}
				body["passwordCredential"] = secret
			}
			if out.out != "" {
				if _, err := os.Lstat(out.out); err == nil {
					return fmt.Errorf("--out: %s exists; name a new file", out.out)
				}
			}
			var p principalDoc
			var raw json.RawMessage
			if err := f.do(cmd, http.MethodPost, "/management/servicePrincipals", body, &raw); err != nil {
				return err
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				return err
			}
			if out.out != "" {
				return out.write(cmd, f, p, certFile)
			}
			return printJSON(cmd.OutOrStdout(), raw)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "display name (required)")
	cmd.Flags().StringVar(&certFile, "cert", "", "PEM file with the certificate to sign in with (and, for --out, its key)")
	cmd.Flags().BoolVar(&secret, "secret", false, "with --cert, give it a secret too")
	out.register(cmd)
	cmd.MarkFlagRequired("name")
	return cmd
}

func principalCertCommand(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "Register and remove a service principal's certificates"}
	var appID, certFile, thumbprint string
	add := &cobra.Command{
		Use: "add", Short: "Register a certificate (only the certificate of --cert is sent)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := certificateKey(certFile)
			if err != nil {
				return err
			}
			return f.call(cmd, http.MethodPost, principalPath(appID)+"/keyCredentials", key)
		},
	}
	add.Flags().StringVar(&certFile, "cert", "", "PEM file with the certificate (required)")
	add.MarkFlagRequired("cert")
	remove := &cobra.Command{
		Use: "remove", Short: "Remove a certificate by its thumbprint (customKeyIdentifier)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if thumbprint == "" {
				return errors.New("--thumbprint: give the certificate's customKeyIdentifier, as `sp show` lists it")
			}
			return f.do(cmd, http.MethodDelete, principalPath(appID)+"/keyCredentials/"+url.PathEscape(thumbprint), nil, nil)
		},
	}
	remove.Flags().StringVar(&thumbprint, "thumbprint", "", "the certificate's customKeyIdentifier (required)")
	for _, c := range []*cobra.Command{add, remove} {
		c.Flags().StringVar(&appID, "app-id", "", "the principal's client id (appId) (required)")
		c.MarkFlagRequired("app-id")
	}
	cmd.AddCommand(add, remove)
	return cmd
}

func principalSecretCommand(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Short: "Reset or remove a service principal's secret"}
	var (
		appID string
		out   credentialsOut
	)
	reset := &cobra.Command{
		Use: "reset", Short: "Give the principal a new secret (the old one stops working), shown once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := f.do(cmd, http.MethodPost, principalPath(appID)+"/secret", nil, &raw); err != nil {
				return err
			}
			var p principalDoc
			if err := json.Unmarshal(raw, &p); err != nil {
				return err
			}
			if out.out != "" {
				return out.write(cmd, f, p, "")
			}
			return printJSON(cmd.OutOrStdout(), raw)
		},
	}
	out.register(reset)
	remove := &cobra.Command{
		Use: "remove", Short: "Remove the principal's secret (it must have a certificate)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.do(cmd, http.MethodDelete, principalPath(appID)+"/secret", nil, nil)
		},
	}
	for _, c := range []*cobra.Command{reset, remove} {
		c.Flags().StringVar(&appID, "app-id", "", "the principal's client id (appId) (required)")
		c.MarkFlagRequired("app-id")
	}
	cmd.AddCommand(reset, remove)
	return cmd
}
