// Command keygate is a self-hosted vault that speaks the Azure Key Vault
// REST API, and the tools to use it. Run `keygate up` for a first try.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "keygate:", err)
		os.Exit(1)
	}
}

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "keygate",
		Short:         "A vault that speaks the Azure Key Vault API, and a gateway that terminates TLS with its certificates",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(upCommand(), vaultCommand(), secretCommand(), certificateCommand(), identityCommand(), gatewayCommand())
	return root
}

// defaultHome is where `keygate up` keeps its data and where the other
// commands find its administrator credentials: $KEYGATE_HOME, or
// ~/.keygate.
func defaultHome() string {
	if h := os.Getenv("KEYGATE_HOME"); h != "" {
		return h
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".keygate"
	}
	return filepath.Join(home, ".keygate")
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
