package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/gateway"
)

// reloadTimeout bounds a reload asked for with `gateway reload`: the
// gateway waits up to 10 seconds for certificates the reload adds.
const reloadTimeout = time.Minute

func gatewayReloadCommand() *cobra.Command {
	var admin string
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make a running gateway apply its configuration file again",
		Long: "Ask a running gateway, through its admin listener, to read the configuration file it was\n" +
			"started with and apply it without dropping a connection (as SIGHUP does), and print what\n" +
			"changed. When the file is not valid, or changes what cannot change while the gateway\n" +
			"runs, nothing changes: the problems are printed and the command exits non-zero.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			code, body, err := postAdmin(cmd, admin, "/reload", nil, reloadTimeout)
			if err != nil {
				return err
			}
			return printReload(cmd.OutOrStdout(), code, body)
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "127.0.0.1:9090", "the gateway's admin listener, host:port")
	return cmd
}

// printReload prints what a reload changed, or its problems.
func printReload(w io.Writer, code int, body []byte) error {
	if code == http.StatusBadRequest {
		var f gateway.ReloadFailure
		if json.Unmarshal(body, &f) == nil && f.Error != "" {
			for _, e := range f.Errors {
				fmt.Fprintln(w, "  "+e)
			}
			return errors.New(f.Error)
		}
	}
	if code != http.StatusOK {
		return answerError(code, body)
	}
	var res gateway.ReloadResult
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("reading the gateway's answer: %w", err)
	}
	fmt.Fprintf(w, "configuration reloaded: generation %d\n", res.Generation)
	for _, l := range []struct {
		what  string
		names []string
	}{{"added", res.Added}, {"removed", res.Removed}, {"changed", res.Changed}} {
		if len(l.names) > 0 {
			fmt.Fprintf(w, "listeners %s: %s\n", l.what, strings.Join(l.names, ", "))
		}
	}
	fmt.Fprintf(w, "listeners unchanged: %d\n", res.Unchanged)
	return nil
}
