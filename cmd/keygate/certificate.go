package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/spf13/cobra"
)

func certificateCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{Use: "certificate", Short: "Manage certificates, as az keyvault certificate does"}
	f.register(cmd)
	cmd.AddCommand(
		certImportCommand(&f), certCreateCommand(&f), certShowCommand(&f), certListCommand(&f),
		certListVersionsCommand(&f), certDownloadCommand(&f), certDeleteCommand(&f),
		certPolicyCommand(&f), certMergeCommand(&f), certPendingCommand(&f), certIssuerCommand(&f),
	)
	return cmd
}

func (f *clientFlags) certificates() (*azcertificates.Client, error) {
	c, err := f.load()
	if err != nil {
		return nil, err
	}
	return c.Certificates(f.vaultURL)
}

// withCerts runs fn with a certificates client.
func withCerts(f *clientFlags, fn func(cmd *cobra.Command, c *azcertificates.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		c, err := f.certificates()
		if err != nil {
			return err
		}
		return fn(cmd, c)
	}
}

// readPolicy reads a policy in Key Vault's JSON (as `policy show` prints
// it, or `az keyvault certificate get-default-policy`).
func readPolicy(path string) (*azcertificates.CertificatePolicy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	var p azcertificates.CertificatePolicy
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("--policy %s: not a certificate policy in JSON: %w", path, err)
	}
	return &p, nil
}

func certImportCommand(f *clientFlags) *cobra.Command {
	var name, file, password, policyFile string
	var tagList []string
	var disabled bool
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Import a certificate with its private key from a PFX or PEM file",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("--file: %w", err)
			}
			// PEM is sent as text, anything else as a base64 PFX.
			value := string(data)
			if !strings.Contains(value, "-----BEGIN") {
				value = base64.StdEncoding.EncodeToString(data)
			}
			params := azcertificates.ImportCertificateParameters{Base64EncodedCertificate: &value}
			if password != "" {
				params.Password = &password
			}
			if params.Tags, err = parseTags(tagList); err != nil {
				return err
			}
			if policyFile != "" {
				if params.CertificatePolicy, err = readPolicy(policyFile); err != nil {
					return err
				}
			}
			if disabled {
				params.CertificateAttributes = &azcertificates.CertificateAttributes{Enabled: to.Ptr(false)}
			}
			resp, err := c.ImportCertificate(cmd.Context(), name, params, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp.Certificate)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&name, "name", "", "certificate name (required)")
	fl.StringVar(&file, "file", "", "PFX or PEM file holding the private key and certificates (required)")
	fl.StringVar(&password, "password", "", "password of the PFX")
	fl.StringVar(&policyFile, "policy", "", "policy JSON file")
	fl.StringSliceVar(&tagList, "tags", nil, "tags as key=value, comma separated")
	fl.BoolVar(&disabled, "disabled", false, "import the version disabled")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("file")
	return cmd
}

func certCreateCommand(f *clientFlags) *cobra.Command {
	var name, policyFile string
	var tagList []string
	var noWait bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a certificate by a policy and wait for it",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			params := azcertificates.CreateCertificateParameters{}
			var err error
			if policyFile != "" {
				if params.CertificatePolicy, err = readPolicy(policyFile); err != nil {
					return err
				}
			}
			if params.Tags, err = parseTags(tagList); err != nil {
				return err
			}
			resp, err := c.CreateCertificate(cmd.Context(), name, params, nil)
			if err != nil {
				return err
			}
			op := resp.CertificateOperation
			if !noWait {
				if op, err = waitForOperation(cmd.Context(), c, name); err != nil {
					return err
				}
			}
			if deref(op.Status) != "completed" {
				return printJSON(cmd.OutOrStdout(), op)
			}
			got, err := c.GetCertificate(cmd.Context(), name, "", nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), got.Certificate)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&name, "name", "", "certificate name (required)")
	fl.StringVar(&policyFile, "policy", "", "policy JSON file (required for a new certificate)")
	fl.StringSliceVar(&tagList, "tags", nil, "tags as key=value, comma separated")
	fl.BoolVar(&noWait, "no-wait", false, "print the pending operation without waiting for it")
	cmd.MarkFlagRequired("name")
	return cmd
}

// waitForOperation polls the pending operation until it leaves
// inProgress, or, for issuer Unknown, until its CSR is ready for an
// outside CA.
func waitForOperation(ctx context.Context, c *azcertificates.Client, name string) (azcertificates.CertificateOperation, error) {
	for {
		resp, err := c.GetCertificateOperation(ctx, name, nil)
		if err != nil {
			return azcertificates.CertificateOperation{}, err
		}
		op := resp.CertificateOperation
		if deref(op.Status) != "inProgress" || len(op.CSR) > 0 {
			return op, nil
		}
		select {
		case <-ctx.Done():
			return op, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func certShowCommand(f *clientFlags) *cobra.Command {
	var name, version string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a certificate with its policy",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			resp, err := c.GetCertificate(cmd.Context(), name, version, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp.Certificate)
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "certificate name (required)")
	cmd.Flags().StringVar(&version, "version", "", "version (default: the current one)")
	cmd.MarkFlagRequired("name")
	return cmd
}

func certListCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List certificates",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			return printAll(cmd, c.NewListCertificatePropertiesPager(nil),
				func(p azcertificates.ListCertificatePropertiesResponse) []*azcertificates.CertificateProperties {
					return p.Value
				})
		}),
	}
}

func certListVersionsCommand(f *clientFlags) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "list-versions",
		Short: "List the versions of a certificate",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			return printAll(cmd, c.NewListCertificatePropertiesVersionsPager(name, nil),
				func(p azcertificates.ListCertificatePropertiesVersionsResponse) []*azcertificates.CertificateProperties {
					return p.Value
				})
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "certificate name (required)")
	cmd.MarkFlagRequired("name")
	return cmd
}

// pager is the part of runtime.Pager printAll uses.
type pager[P any] interface {
	More() bool
	NextPage(context.Context) (P, error)
}

// printAll follows every page and prints all items as one JSON array.
func printAll[P, T any](cmd *cobra.Command, p pager[P], items func(P) []T) error {
	out := []T{}
	for p.More() {
		page, err := p.NextPage(cmd.Context())
		if err != nil {
			return err
		}
		out = append(out, items(page)...)
	}
	return printJSON(cmd.OutOrStdout(), out)
}

func certDownloadCommand(f *clientFlags) *cobra.Command {
	var name, version, file, encoding string
	cmd := &cobra.Command{
		Use:   "download",
		Short: "Download the public certificate (no key) as PEM or DER",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			resp, err := c.GetCertificate(cmd.Context(), name, version, nil)
			if err != nil {
				return err
			}
			out := resp.CER
			switch strings.ToUpper(encoding) {
			case "PEM":
				out = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: resp.CER})
			case "DER":
			default:
				return fmt.Errorf("--encoding: %q is not PEM or DER", encoding)
			}
			return os.WriteFile(file, out, 0o644)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&name, "name", "", "certificate name (required)")
	fl.StringVar(&version, "version", "", "version (default: the current one)")
	fl.StringVar(&file, "file", "", "file to write (required)")
	fl.StringVar(&encoding, "encoding", "PEM", "PEM or DER")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("file")
	return cmd
}

func certDeleteCommand(f *clientFlags) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Soft-delete a certificate with its secret and key",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			resp, err := c.DeleteCertificate(cmd.Context(), name, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp.DeletedCertificate)
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "certificate name (required)")
	cmd.MarkFlagRequired("name")
	return cmd
}

func certPolicyCommand(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Show or change a certificate's policy"}
	var name, file string
	show := &cobra.Command{
		Use:   "show",
		Short: "Show a certificate's policy",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			resp, err := c.GetCertificatePolicy(cmd.Context(), name, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp.CertificatePolicy)
		}),
	}
	set := &cobra.Command{
		Use:   "set",
		Short: "Change a certificate's policy: the fields given replace the stored ones",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			p, err := readPolicy(file)
			if err != nil {
				return err
			}
			resp, err := c.UpdateCertificatePolicy(cmd.Context(), name, *p, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp.CertificatePolicy)
		}),
	}
	for _, sub := range []*cobra.Command{show, set} {
		sub.Flags().StringVar(&name, "name", "", "certificate name (required)")
		sub.MarkFlagRequired("name")
	}
	set.Flags().StringVar(&file, "policy", "", "policy JSON file (required)")
	set.MarkFlagRequired("policy")
	cmd.AddCommand(show, set)
	return cmd
}

func certMergeCommand(f *clientFlags) *cobra.Command {
	var name, file string
	cmd := &cobra.Command{
		Use:   "merge",
		Short: "Complete a pending request of issuer Unknown with the certificate its CA signed",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			ders, err := readCertFile(file)
			if err != nil {
				return err
			}
			resp, err := c.MergeCertificate(cmd.Context(), name, azcertificates.MergeCertificateParameters{X509Certificates: ders}, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp.Certificate)
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "certificate name (required)")
	cmd.Flags().StringVar(&file, "file", "", "signed certificate and chain, PEM or DER (required)")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("file")
	return cmd
}

// readCertFile reads certificates from PEM, or one certificate in DER.
func readCertFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--file: %w", err)
	}
	var ders [][]byte
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			ders = append(ders, block.Bytes)
		}
	}
	if len(ders) == 0 && !strings.Contains(string(b), "-----BEGIN") {
		ders = [][]byte{b}
	}
	if len(ders) == 0 {
		return nil, fmt.Errorf("--file %s: no certificate in it", path)
	}
	return ders, nil
}

func certPendingCommand(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "pending", Short: "Show, cancel or delete a certificate's pending operation"}
	var name, csrFile string
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the pending operation (and write its CSR with --csr-file)",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			resp, err := c.GetCertificateOperation(cmd.Context(), name, nil)
			if err != nil {
				return err
			}
			if csrFile != "" {
				if len(resp.CSR) == 0 {
					return errors.New("the operation has no CSR (yet)")
				}
				csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: resp.CSR})
				if err := os.WriteFile(csrFile, csr, 0o644); err != nil {
					return err
				}
			}
			return printJSON(cmd.OutOrStdout(), resp.CertificateOperation)
		}),
	}
	cancel := &cobra.Command{
		Use:   "cancel",
		Short: "Cancel the operation in progress",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			resp, err := c.UpdateCertificateOperation(cmd.Context(), name,
				azcertificates.UpdateCertificateOperationParameter{CancellationRequested: to.Ptr(true)}, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp.CertificateOperation)
		}),
	}
	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete the operation",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			resp, err := c.DeleteCertificateOperation(cmd.Context(), name, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp.CertificateOperation)
		}),
	}
	for _, sub := range []*cobra.Command{show, cancel, del} {
		sub.Flags().StringVar(&name, "name", "", "certificate name (required)")
		sub.MarkFlagRequired("name")
	}
	show.Flags().StringVar(&csrFile, "csr-file", "", "write the CSR here as PEM")
	cmd.AddCommand(show, cancel, del)
	return cmd
}

func certIssuerCommand(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "issuer", Short: "Manage certificate issuers (provider keygate-ca)"}
	var name, provider, file string
	var disabled bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an issuer; keygate-ca makes a private root and intermediate CA",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			params := azcertificates.SetIssuerParameters{Provider: &provider}
			if disabled {
				params.Attributes = &azcertificates.IssuerAttributes{Enabled: to.Ptr(false)}
			}
			resp, err := c.SetIssuer(cmd.Context(), name, params, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp.Issuer)
		}),
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Show an issuer",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			resp, err := c.GetIssuer(cmd.Context(), name, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp.Issuer)
		}),
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List issuers",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			return printAll(cmd, c.NewListIssuerPropertiesPager(nil),
				func(p azcertificates.ListIssuerPropertiesResponse) []*azcertificates.IssuerProperties { return p.Value })
		}),
	}
	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete an issuer and its CA",
		Args:  cobra.NoArgs,
		RunE: withCerts(f, func(cmd *cobra.Command, c *azcertificates.Client) error {
			resp, err := c.DeleteIssuer(cmd.Context(), name, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp.Issuer)
		}),
	}
	chain := &cobra.Command{
		Use:   "chain",
		Short: "Download a keygate-ca issuer's chain (intermediate, root) as PEM, for clients to trust",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pemChain, err := f.issuerChain(cmd.Context(), name)
			if err != nil {
				return err
			}
			if file == "" {
				_, err = cmd.OutOrStdout().Write(pemChain)
				return err
			}
			return os.WriteFile(file, pemChain, 0o644)
		},
	}
	for _, sub := range []*cobra.Command{create, show, del, chain} {
		sub.Flags().StringVar(&name, "name", "", "issuer name (required)")
		sub.MarkFlagRequired("name")
	}
	create.Flags().StringVar(&provider, "provider", "keygate-ca", "issuer provider")
	create.Flags().BoolVar(&disabled, "disabled", false, "create the issuer disabled")
	chain.Flags().StringVar(&file, "file", "", "file to write (default: standard output)")
	cmd.AddCommand(create, show, list, del, chain)
	return cmd
}

// issuerChain fetches a keygate-ca issuer's chain as the credentials'
// principal.
func (f *clientFlags) issuerChain(ctx context.Context, name string) ([]byte, error) {
	creds, err := f.load()
	if err != nil {
		return nil, err
	}
	return creds.IssuerChain(ctx, f.vaultURL, name)
}
