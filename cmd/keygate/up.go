package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/client"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/quickstart"
	"github.com/keygate/keygate/internal/server"
)

// upFlags are `keygate up`'s own flags, beside the vault's.
type upFlags struct {
	gatewayPort  int
	backendAddr  string
	gatewayAdmin string
}

func upCommand() *cobra.Command {
	var (
		f  serveFlags
		uf upFlags
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run keygate end to end on its embedded defaults, for a first try",
		Long: "Run, on loopback, with the data in $KEYGATE_HOME (default ~/.keygate): a vault; an\n" +
			"identity agent for the managed identity keygate-local, which may read the default\n" +
			"vault's secrets; a demo backend; and a gateway whose HTTPS listener serves a\n" +
			"certificate the vault issued, read as keygate-local. Print how to use each.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUp(cmd, &f, &uf)
		},
	}
	f.register(cmd, defaultHome())
	fl := cmd.Flags()
	fl.StringVar(&f.cfg.AgentListen, "agent-listen", "127.0.0.1:8442", "loopback address of the identity agent; empty runs none (and no gateway)")
	fl.IntVar(&uf.gatewayPort, "gateway-port", 8444, "port of the gateway's HTTPS listener on 127.0.0.1; 0 runs no gateway")
	fl.StringVar(&uf.backendAddr, "backend-listen", "127.0.0.1:8445", "address of the demo backend")
	fl.StringVar(&uf.gatewayAdmin, "gateway-admin", "127.0.0.1:8446", "address of the gateway's admin listener (metrics, status)")
	return cmd
}

// runUp starts the vault, then the demo chain, and serves until
// interrupted.
func runUp(cmd *cobra.Command, f *serveFlags, uf *upFlags) error {
	ctx := cmd.Context()
	srv, err := f.server(cmd)
	if err != nil {
		return err
	}
	defer f.close()
	if err := srv.Open(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting
		}
		return err
	}
	vaultDone := make(chan error, 1)
	go func() { vaultDone <- srv.Serve(ctx) }()

	printWelcome(cmd, srv)
	stopDemo := func() {}
	if uf.gatewayPort != 0 && srv.AgentEnvironment() != nil {
		stop, err := startDemo(ctx, cmd, srv, f, uf)
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "\nThe demo gateway did not start: %v\n"+
				"The vault runs on; --gateway-port 0 runs it alone.\n", err)
		} else {
			stopDemo = stop
		}
	}

	// The gateway stops before the vault it reads from.
	select {
	case err := <-vaultDone:
		stopDemo()
		return err
	case <-ctx.Done():
	}
	stopDemo()
	return <-vaultDone
}

// startDemo prepares and starts the demo backend and gateway, and prints
// how to reach them. stop shuts both down.
func startDemo(ctx context.Context, cmd *cobra.Command, srv *server.Server, f *serveFlags, uf *upFlags) (stop func(), err error) {
	log, err := newLogger(f.logLevel)
	if err != nil {
		return nil, err
	}
	log = log.With("component", "gateway")

	// The gateway authenticates through the local agent, as an
	// application on this host would: with its environment.
	for _, kv := range srv.AgentEnvironment() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	files, err := prepareDemo(ctx, srv, f.cfg.DataDir, uf)
	if err != nil {
		return nil, err
	}

	backend, err := serveBackend(uf.backendAddr)
	if err != nil {
		return nil, err
	}
	cfg, err := loadGatewayConfig(files.GatewayConfig)
	if err != nil {
		backend.Close()
		return nil, err
	}
	// The file is written at every start; edits to it apply while up
	// runs through the admin listener's reload.
	gw := gateway.New(cfg, gateway.Options{Logger: log, ConfigFile: files.GatewayConfig})
	if err := gw.Start(ctx); err != nil {
		backend.Close()
		return nil, err
	}
	waitReady(ctx, gw, log)
	printGateway(cmd, uf, files)
	return func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gw.Shutdown(shutdownCtx)
		backend.Shutdown(shutdownCtx)
	}, nil
}

// prepareDemo makes sure the vault holds the demo certificate and writes
// the gateway's configuration.
func prepareDemo(ctx context.Context, srv *server.Server, dir string, uf *upFlags) (quickstart.Files, error) {
	admin, err := client.Load(srv.AdminFile())
	if err != nil {
		return quickstart.Files{}, err
	}
	// admin.json names the address of the first start.
	admin.VaultURL, admin.AuthorityHost = srv.URL(), srv.AuthorityHost()
	mi, err := srv.Authority().ManagedIdentity(ctx, server.LocalIdentity)
	if err != nil {
		return quickstart.Files{}, err
	}
	return quickstart.Prepare(ctx, quickstart.Config{
		Dir: dir, Admin: admin, ClientID: mi.ClientID,
		GatewayPort: uf.gatewayPort, BackendAddr: uf.backendAddr, AdminAddr: uf.gatewayAdmin,
	})
}

// serveBackend serves the demo backend on addr.
func serveBackend(addr string) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo backend: %w", err)
	}
	hs := &http.Server{Handler: quickstart.Backend(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	return hs, nil
}

// waitReady waits, for a while, until the gateway has loaded its
// certificate, so that the command printed next works at once.
func waitReady(ctx context.Context, gw *gateway.Gateway, log *slog.Logger) {
	deadline := time.Now().Add(30 * time.Second)
	for !gw.Ready() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			log.Warn("the gateway is not ready yet: see its status", "admin", gw.AdminAddr())
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func printWelcome(cmd *cobra.Command, srv *server.Server) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, `keygate is up.

  vault URL        %s
  CA certificate   %s
  administrator    %s  (tenant, client id and secret; mode 0600)

Try it:
  keygate secret set --name hello --value world
  keygate secret show --name hello
  keygate vault show

Clients reach this vault by IP address, so an Azure SDK client sets
DisableChallengeResourceVerification (see README.md). Stop with Ctrl-C.
`, srv.URL(), srv.CAFile(), srv.AdminFile())
	env := srv.AgentEnvironment()
	if env == nil {
		return
	}
	fmt.Fprintf(out, `
Managed identity: an application with this environment obtains tokens of the
identity %s (get on the default vault's secrets) through
ManagedIdentityCredential or DefaultAzureCredential, with no secret of its own
(also in %s):

  export %s
  export %s
`, server.LocalIdentity, srv.AgentEnvFile(), env[0], env[1])
}

func printGateway(cmd *cobra.Command, uf *upFlags, files quickstart.Files) {
	fmt.Fprintf(cmd.OutOrStdout(), `
Gateway: HTTPS on 127.0.0.1:%d with the certificate %q that the vault issued
from its issuer %q, read from the vault as %s; in front of a demo
backend on %s:

  curl --cacert %s https://127.0.0.1:%d/

  configuration  %s
                 (edited, applied by: keygate gateway reload --admin %s)
  status         http://%s/status   (metrics at /metrics)
`, uf.gatewayPort, quickstart.CertificateName, quickstart.IssuerName, server.LocalIdentity,
		uf.backendAddr, files.CAFile, uf.gatewayPort, files.GatewayConfig, uf.gatewayAdmin, uf.gatewayAdmin)
}
