package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/seal"
)

// CacheKeyEnv is the environment variable that may carry the gateway's
// certificate cache key.
const CacheKeyEnv = "KEYGATE_GATEWAY_CACHE_KEY"

// cacheKey reads the certificate cache's key from the file named by the
// flag, else from CacheKeyEnv. The zero Key means neither was given.
func cacheKey(file string) (seal.Key, error) {
	if file != "" {
		k, err := seal.LoadKeyFile(file)
		if err != nil {
			return seal.Key{}, fmt.Errorf("--cache-key-file: %w", err)
		}
		return k, nil
	}
	if s := os.Getenv(CacheKeyEnv); s != "" {
		k, err := seal.ParseKey(s)
		if err != nil {
			return seal.Key{}, fmt.Errorf("%s: %w", CacheKeyEnv, err)
		}
		return k, nil
	}
	return seal.Key{}, nil
}

func gatewayCacheKeyCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "cache-key",
		Short: "Create the key of the gateway's certificate cache, unless the file exists",
		Long: "Write a new random key for the gateway's certificate cache (certificateCache.path) to\n" +
			"FILE with mode 0600, unless FILE exists; then give it to `gateway run --cache-key-file`.\n" +
			"Keep it on the host, apart from the configuration: whoever holds it can open the cache.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, created, err := seal.LoadOrCreateKeyFile(file)
			if err != nil {
				return err
			}
			verb := "exists"
			if created {
				verb = "created"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (key id %s)\n", file, verb, k.ID())
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "where to write the key")
	cmd.MarkFlagRequired("file")
	return cmd
}

func gatewayRefreshCommand() *cobra.Command {
	var admin, name string
	cmd := &cobra.Command{
		Use:   "refresh",
		Short: "Make a running gateway read its vault certificates now",
		Long: "Ask a running gateway, through its admin listener, to read its vault certificates now\n" +
			"(or only --certificate), and print what each read found. Exits non-zero when a\n" +
			"certificate could not be refreshed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			results, err := postRefresh(cmd, admin, name)
			if err != nil {
				return err
			}
			return printRefresh(cmd.OutOrStdout(), results)
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "127.0.0.1:9090", "the gateway's admin listener, host:port")
	cmd.Flags().StringVar(&name, "certificate", "", "the sslCertificate or trustedRootCertificate to read (default every one)")
	return cmd
}

// postRefresh sends POST /refresh to the admin listener.
func postRefresh(cmd *cobra.Command, admin, name string) ([]gateway.RefreshResult, error) {
	var q url.Values
	if name != "" {
		q = url.Values{"certificate": {name}}
	}
	code, body, err := postAdmin(cmd, admin, "/refresh", q, gateway.RefreshTimeout)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, answerError(code, body)
	}
	var out gateway.RefreshResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("reading the gateway's answer: %w", err)
	}
	return out.Results, nil
}

// postAdmin sends POST path?query to the admin listener at admin
// (host:port, or a URL) and returns the answer's status and body. The
// request may take up to timeout on the gateway's side.
func postAdmin(cmd *cobra.Command, admin, path string, query url.Values, timeout time.Duration) (int, []byte, error) {
	base := admin
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(strings.TrimSuffix(base, "/") + path)
	if err != nil || u.Host == "" {
		return 0, nil, fmt.Errorf("--admin: %q is not host:port", admin)
	}
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, u.String(), nil)
	if err != nil {
		return 0, nil, err
	}
	hc := &http.Client{Timeout: timeout + 10*time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("asking the gateway at %s: %w", admin, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, nil
}

// answerError is the error of an answer other than 200: its message when
// it has one.
func answerError(code int, body []byte) error {
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	var e struct{ Error string }
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return fmt.Errorf("the gateway answered %s: %s", status, e.Error)
	}
	return fmt.Errorf("the gateway answered %s", status)
}

// printRefresh prints a line per certificate and fails when any is not
// OK.
func printRefresh(w io.Writer, results []gateway.RefreshResult) error {
	failed := 0
	for _, r := range results {
		what := "unchanged"
		if r.Changed {
			what = "rotated"
		}
		line := fmt.Sprintf("%s/%s: version %s (serial %s) %s", r.Collection, r.Certificate, r.Version, r.Serial, what)
		if r.Condition != certs.OK {
			failed++
			line = fmt.Sprintf("%s/%s: %s: %s", r.Collection, r.Certificate, r.Condition, r.Error)
			if r.Version != "" {
				line += fmt.Sprintf(" (in use: version %s, serial %s, served %v)", r.Version, r.Serial, r.Serving)
			}
		}
		fmt.Fprintln(w, line)
	}
	if len(results) == 0 {
		fmt.Fprintln(w, "no certificate is read from a vault")
	}
	if failed > 0 {
		return errors.New(pluralize(failed, "certificate") + " could not be refreshed")
	}
	return nil
}

func pluralize(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
