package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/agent"
	"github.com/keygate/keygate/internal/client"
)

func identityCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Manage user-assigned managed identities and the hosts they run on, and run a host's agent",
	}
	f.register(cmd)
	cmd.AddCommand(
		identityCreateCommand(&f), identityListCommand(&f),
		identityNameCommand(&f, "show", "Show a managed identity", http.MethodGet),
		identityNameCommand(&f, "delete", "Delete a managed identity and its assignments", http.MethodDelete),
		identityAssignCommand(&f), identityUnassignCommand(&f),
		hostCommand(&f), agentCommand(), signingKeyCommand(&f), principalCommand(&f),
	)
	return cmd
}

func signingKeyCommand(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "signing-key", Short: "List and rotate the keys that sign access tokens"}
	list := &cobra.Command{
		Use: "list", Short: "List the token signing keys", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.callList(cmd, "/management/signingKeys") },
	}
	var delay time.Duration
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Add a signing key, published at once and signing after --activation-delay",
		Long: "Adds a token signing key that every vault replica publishes at once and signs with\n" +
			"after --activation-delay, and retires keys whose tokens have all expired.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if delay < 0 {
				return errors.New("--activation-delay: must not be negative")
			}
			body := map[string]any{"activationDelaySeconds": int64(delay / time.Second)}
			return f.call(cmd, http.MethodPost, "/management/signingKeys/rotate", body)
		},
	}
	rotate.Flags().DurationVar(&delay, "activation-delay", 5*time.Minute, "how long the new key is published before it signs")
	cmd.AddCommand(list, rotate)
	return cmd
}

func identityCreateCommand(f *clientFlags) *cobra.Command {
	var name string
	var service bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a user-assigned managed identity, as az identity create",
		Long: "Creates an identity with a new client id and principal id. Grant it access with\n" +
			"`keygate vault set-policy --object-id PRINCIPAL-ID` or `keygate vault assign-role`,\n" +
			"and assign it to the hosts whose agents may obtain its tokens.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{"properties": map[string]any{"keygateService": service}}
			return f.call(cmd, http.MethodPut, "/management/identities/"+url.PathEscape(name), body)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "identity name (required)")
	cmd.Flags().BoolVar(&service, "keygate-service", false,
		"mark the identity as one of keygate's own services (a gateway fleet's), which networkAcls.bypass AzureServices lets through")
	cmd.MarkFlagRequired("name")
	return cmd
}

func identityListCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List managed identities",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.callList(cmd, "/management/identities")
		},
	}
}

// identityNameCommand is a command that calls method on one identity.
func identityNameCommand(f *clientFlags, use, short, method string) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(cmd, method, "/management/identities/"+url.PathEscape(name), nil)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "identity name (required)")
	cmd.MarkFlagRequired("name")
	return cmd
}

// credentialFlags say how long a host credential lasts and where it goes.
type credentialFlags struct {
	lifetime time.Duration
	file     string
}

func (c *credentialFlags) register(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&c.lifetime, "credential-lifetime", 0,
		"how long a new enrolment credential is valid, e.g. 720h (default 90 days)")
	cmd.Flags().StringVar(&c.file, "credential-file", "",
		"write a new enrolment credential to this file (mode 0600) instead of printing it")
}

func (c *credentialFlags) body() any {
	if c.lifetime == 0 {
		return nil
	}
	return map[string]any{"credentialLifetimeSeconds": int64(c.lifetime / time.Second)}
}

// enrolment is the answer of calls that may issue a host credential.
type enrolment struct {
	Host       map[string]any `json:"host"`
	Credential string         `json:"credential,omitempty"`
	Authority  string         `json:"authority"`
}

// output prints e, first moving its credential to the file if one was
// given, so that it is printed nowhere.
func (c *credentialFlags) output(cmd *cobra.Command, e enrolment) error {
	if e.Credential != "" && c.file != "" {
		if err := os.WriteFile(c.file, []byte(e.Credential+"\n"), 0o600); err != nil {
			return fmt.Errorf("writing credential file: %w", err)
		}
		e.Credential = ""
		fmt.Fprintf(cmd.ErrOrStderr(), "enrolment credential written to %s\n", c.file)
	}
	return printJSON(cmd.OutOrStdout(), e)
}

func identityAssignCommand(f *clientFlags) *cobra.Command {
	var name, host string
	var cf credentialFlags
	cmd := &cobra.Command{
		Use:   "assign",
		Short: "Assign an identity to a host, enrolling the host if it is new",
		Long: "Assigns the identity to the host. For a new host this issues its enrolment\n" +
			"credential, shown only now (or written to --credential-file): give it to the\n" +
			"host's `keygate identity agent`. A known host keeps its credential.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var e enrolment
			path := "/management/hosts/" + url.PathEscape(host) + "/identities/" + url.PathEscape(name)
			if err := f.do(cmd, http.MethodPut, path, cf.body(), &e); err != nil {
				return err
			}
			return cf.output(cmd, e)
		},
	}
	cmd.Flags().StringVar(&name, "identity", "", "identity name (required)")
	cmd.Flags().StringVar(&host, "host", "", "host name (required)")
	cf.register(cmd)
	cmd.MarkFlagRequired("identity")
	cmd.MarkFlagRequired("host")
	return cmd
}

func identityUnassignCommand(f *clientFlags) *cobra.Command {
	var name, host string
	cmd := &cobra.Command{
		Use:   "unassign",
		Short: "Stop a host's agent obtaining an identity's tokens",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/management/hosts/" + url.PathEscape(host) + "/identities/" + url.PathEscape(name)
			return f.call(cmd, http.MethodDelete, path, nil)
		},
	}
	cmd.Flags().StringVar(&name, "identity", "", "identity name (required)")
	cmd.Flags().StringVar(&host, "host", "", "host name (required)")
	cmd.MarkFlagRequired("identity")
	cmd.MarkFlagRequired("host")
	return cmd
}

func hostCommand(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "host", Short: "Manage the hosts identities are assigned to"}
	var showHost, deleteHost string
	show := &cobra.Command{
		Use: "show", Short: "Show a host and its identities", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(cmd, http.MethodGet, "/management/hosts/"+url.PathEscape(showHost), nil)
		},
	}
	show.Flags().StringVar(&showHost, "host", "", "host name (required)")
	show.MarkFlagRequired("host")
	del := &cobra.Command{
		Use: "delete", Short: "Delete a host: its credential stops working at once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(cmd, http.MethodDelete, "/management/hosts/"+url.PathEscape(deleteHost), nil)
		},
	}
	del.Flags().StringVar(&deleteHost, "host", "", "host name (required)")
	del.MarkFlagRequired("host")
	list := &cobra.Command{
		Use: "list", Short: "List hosts", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.callList(cmd, "/management/hosts") },
	}
	cmd.AddCommand(list, show, del, hostCredentialCommand(f))
	return cmd
}

func hostCredentialCommand(f *clientFlags) *cobra.Command {
	var host string
	var cf credentialFlags
	cmd := &cobra.Command{
		Use:   "credential",
		Short: "Issue a host a new enrolment credential; the old one stops working",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var e enrolment
			if err := f.do(cmd, http.MethodPost, "/management/hosts/"+url.PathEscape(host)+"/credential", cf.body(), &e); err != nil {
				return err
			}
			return cf.output(cmd, e)
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "host name (required)")
	cf.register(cmd)
	cmd.MarkFlagRequired("host")
	return cmd
}

func agentCommand() *cobra.Command {
	var (
		cfg                       agent.Config
		caFile, envFile, auditLog string
		logLevel                  string
		auditRequired             bool
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Serve managed-identity tokens to this host's processes",
		Long: "Serves the App Service managed-identity protocol on loopback for the identities\n" +
			"assigned to --host, so that the Azure SDKs' ManagedIdentityCredential and\n" +
			"DefaultAzureCredential obtain their tokens unchanged. It prints the environment\n" +
			"clients need (IDENTITY_ENDPOINT, IDENTITY_HEADER) and writes it to --env-file.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			if cfg.HTTPClient, err = client.Transport(caFile); err != nil {
				return err
			}
			if envFile != "" {
				if cfg.Header, err = agent.ReadHeaderFromEnvFile(envFile); err != nil {
					return err
				}
			}
			w, err := openAuditLog(auditLog, auditRequired, log)
			if err != nil {
				return err
			}
			if w != nil {
				defer w.Close()
				cfg.Audit = w
			}
			cfg.Logger = log
			return runAgent(cmd, cfg, envFile)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Authority, "authority", "", "the identity authority with its tenant, as `keygate identity assign` prints it (required)")
	fl.StringVar(&cfg.Host, "host", "", "this host's name, as identities were assigned to it (required)")
	fl.StringVar(&cfg.CredentialFile, "credential-file", "", "file holding the host's enrolment credential (required)")
	fl.StringVar(&cfg.Listen, "listen", "127.0.0.1:8442", "loopback address to serve on")
	fl.StringVar(&caFile, "ca-file", "", "CA certificate (PEM) to trust for the authority's TLS, besides the system's")
	fl.StringVar(&envFile, "env-file", "", "write IDENTITY_ENDPOINT and IDENTITY_HEADER here (mode 0600); a header found there is kept")
	fl.StringVar(&auditLog, "audit-log", "", "write an audit record per token request to this file, or - for standard output")
	fl.BoolVar(&auditRequired, "audit-required", false, "refuse token requests (503) while the audit log cannot be written")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	for _, name := range []string{"authority", "host", "credential-file"} {
		cmd.MarkFlagRequired(name)
	}
	return cmd
}

// runAgent opens the agent, prints and writes its environment, and serves
// until the command's context ends.
func runAgent(cmd *cobra.Command, cfg agent.Config, envFile string) error {
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	if err := a.Open(cmd.Context()); err != nil {
		return err
	}
	if envFile != "" {
		if err := a.WriteEnvFile(envFile); err != nil {
			a.Close()
			return err
		}
	}
	for _, kv := range a.Environment() {
		fmt.Fprintln(cmd.OutOrStdout(), kv)
	}
	err = a.Serve(cmd.Context())
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
