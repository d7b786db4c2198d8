package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gateway/config"
)

func gatewayCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run an application gateway that terminates TLS with the vault's certificates",
	}
	cmd.AddCommand(gatewayRunCommand(), gatewayValidateCommand(), gatewayRefreshCommand(), gatewayReloadCommand(),
		gatewayCacheKeyCommand())
	return cmd
}

func gatewayRunCommand() *cobra.Command {
	var configFile, logLevel, cacheKeyFile string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Serve the listeners of a gateway configuration until interrupted",
		Long: "Serve the listeners of a gateway configuration (YAML or JSON, with the property names of\n" +
			"Azure's Microsoft.Network/applicationGateways) until SIGINT or SIGTERM, then drain\n" +
			"requests in flight for up to shutdownTimeout seconds. SIGHUP (or `gateway reload`)\n" +
			"applies the file again without dropping a connection.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			cfg, err := loadGatewayConfig(configFile)
			if err != nil {
				return err
			}
			key, err := cacheKey(cacheKeyFile)
			if err != nil {
				return err
			}
			// A proxy's garbage is short-lived: collecting less often costs
			// some memory and saves a tenth of the CPU per request (see
			// bench/README.md). GOGC, when set, still decides.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(400)
			}
			for _, s := range cfg.Policy().Omitted {
				log.Debug("TLS policy suite not offered: Go's crypto/tls lacks it", "policy", cfg.Policy().Name, "suite", s)
			}
			g := gateway.New(cfg, gateway.Options{Logger: log, CacheKey: key, ConfigFile: configFile})
			stop := reloadOnHangup(cmd.Context(), g, log)
			defer stop()
			return g.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "gateway configuration file (YAML or JSON)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringVar(&cacheKeyFile, "cache-key-file", "",
		"key file (mode 0600) of the certificate cache; else the environment variable "+CacheKeyEnv)
	cmd.MarkFlagRequired("config")
	return cmd
}

// reloadOnHangup reloads g's configuration on each SIGHUP until the
// returned function is called. Reload logs the outcome itself.
func reloadOnHangup(ctx context.Context, g *gateway.Gateway, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hup:
				log.Info("reload asked for by SIGHUP")
				if _, err := g.Reload(ctx); errors.Is(err, gateway.ErrNotRunning) {
					log.Warn("SIGHUP ignored: the gateway is not serving", "error", err)
				}
			case <-done:
				return
			}
		}
	})
	return func() {
		signal.Stop(hup)
		close(done)
		wg.Wait()
	}
}

func gatewayValidateCommand() *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a gateway configuration without serving it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadGatewayConfig(configFile)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			p := cfg.Policy()
			fmt.Fprintf(out, "%s: valid: %d listeners, %d certificates, %d routing rules\n",
				configFile, len(cfg.HTTPListeners), len(cfg.SSLCertificates), len(cfg.RequestRoutingRules))
			fmt.Fprintf(out, "TLS policy %s\n", p.Name)
			if cfg.UsesKeyVault() {
				cache := "off"
				if cfg.CertificateCache.Path != "" {
					cache = cfg.CertificateCache.Path
				}
				fmt.Fprintf(out, "vault certificates read every %v, onKeyVaultError %s, certificate cache %s\n",
					cfg.PollInterval(), cfg.OnKeyVaultError, cache)
			}
			if len(p.Omitted) > 0 {
				fmt.Fprintf(out, "not offered (Go's crypto/tls lacks them): %s\n", strings.Join(p.Omitted, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "gateway configuration file (YAML or JSON)")
	cmd.MarkFlagRequired("config")
	return cmd
}

// loadGatewayConfig loads a configuration; when it does not validate, the
// error lists every problem, one a line.
func loadGatewayConfig(path string) (*config.Gateway, error) {
	cfg, err := config.Load(path)
	var errs config.Errors
	if errors.As(err, &errs) {
		return nil, fmt.Errorf("%s is not valid:\n  %s", path, strings.ReplaceAll(errs.Error(), "\n", "\n  "))
	}
	return cfg, err
}
