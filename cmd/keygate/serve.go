package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/server"
)

// storeEnv may carry the --store URL, which holds the database password
// and so is better kept off the command line.
const storeEnv = "KEYGATE_STORE"

// serveFlags are the flags of `keygate vault serve`, shared with `up`.
type serveFlags struct {
	config   string // a file of settings, applied by server()
	cfg      server.Config
	logLevel string
	auditLog string
	auditReq bool
	audit    *audit.Writer // opened by server(); closed by close()
}

func (f *serveFlags) register(cmd *cobra.Command, defaultData string) {
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "YAML or JSON file of these settings, named as the flags (flags given here win)")
	fl.StringVar(&f.cfg.DataDir, "data", defaultData, "data folder: database, master key, tls/ca.pem, admin.json")
	fl.StringVar(&f.cfg.Listen, "listen", "127.0.0.1:8443", "address to serve HTTPS on")
	fl.StringVar(&f.cfg.Hostname, "hostname", "", "DNS name clients reach the vault by (its parent domain becomes the token resource)")
	fl.StringVar(&f.cfg.PublicURL, "url", "", "URL clients reach the vault by, when not --hostname at the listening port (a load balancer in front of replicas)")
	fl.DurationVar(&f.cfg.SigningKeyRotation, "signing-key-rotation", 90*24*time.Hour, "rotate the token signing key when it is this old (0: only when asked)")
	fl.StringVar(&f.cfg.TLSCertFile, "tls-cert", "", "server certificate (PEM) instead of one from the local CA")
	fl.StringVar(&f.cfg.TLSKeyFile, "tls-key", "", "server key (PEM) for --tls-cert")
	fl.StringVar(&f.cfg.StoreURL, "store", "", "postgres:// URL of a database shared by several replicas (default the embedded database in DATA; or set "+storeEnv+")")
	fl.StringVar(&f.cfg.MasterKeyFile, "master-key-file", "", "master key file (default DATA/master.key; or set "+server.MasterKeyEnv+")")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.cfg.OpsListen, "ops-listen", "", "address of a plain HTTP listener for Prometheus metrics (/metrics) and health checks (/healthz, /readyz); none when empty")
	fl.StringVar(&f.auditLog, "audit-log", "", "write one JSON audit record per request to this file (appended, mode 0600), or - for standard output")
	fl.BoolVar(&f.auditReq, "audit-required", false, "refuse requests (503) while the audit log cannot be written, instead of serving them unaudited")
}

func (f *serveFlags) server(cmd *cobra.Command) (*server.Server, error) {
	if f.config != "" {
		if err := applyConfigFile(cmd, f.config); err != nil {
			return nil, err
		}
	}
	if (f.cfg.TLSCertFile == "") != (f.cfg.TLSKeyFile == "") {
		return nil, fmt.Errorf("--tls-cert and --tls-key go together")
	}
	log, err := newLogger(f.logLevel)
	if err != nil {
		return nil, err
	}
	cfg := f.cfg
	cfg.MasterKey = os.Getenv(server.MasterKeyEnv)
	if cfg.StoreURL == "" {
		// Read here rather than as the flag's default, which --help
		// would print, password and all.
		cfg.StoreURL = os.Getenv(storeEnv)
	}
	cfg.Logger = log
	if f.audit, err = openAuditLog(f.auditLog, f.auditReq, log); err != nil {
		return nil, err
	}
	if f.audit != nil {
		cfg.Audit = f.audit
	}
	return server.New(cfg), nil
}

// close closes the audit log, if one was opened.
func (f *serveFlags) close() {
	if f.audit != nil {
		f.audit.Close()
	}
}

func serveCommand() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a vault over HTTPS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := f.server(cmd)
			if err != nil {
				return err
			}
			defer f.close()
			return srv.Run(cmd.Context())
		},
	}
	f.register(cmd, defaultHome())
	return cmd
}

// openAuditLog opens the audit log at dest ("-" for standard output),
// failing closed when required; nil when dest is empty.
func openAuditLog(dest string, required bool, log *slog.Logger) (*audit.Writer, error) {
	if dest == "" {
		if required {
			return nil, fmt.Errorf("--audit-required needs --audit-log")
		}
		return nil, nil
	}
	w, err := audit.Open(dest, log)
	if err != nil {
		return nil, err
	}
	if required {
		w.Require()
	}
	return w, nil
}
