package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/store/bolt"
)

func vaultSnapshotCommand(f *clientFlags) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Back up a running server's embedded database to a file, checked before it is kept",
		Long: "Copies the whole embedded database of a running server (every vault, identity and\n" +
			"signing key, sealed as at rest) as one consistent moment, while it goes on serving.\n" +
			"The copy opens only with the server's master key, which it does not hold: keep the\n" +
			"two apart. To restore, stop the server and put the file in place of DATA/vault.db.\n" +
			"A server on PostgreSQL is backed up with PostgreSQL's own tools.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out: name the file to write the snapshot to")
			}
			if _, err := os.Lstat(out); err == nil {
				return fmt.Errorf("--out: %s exists; name a new file", out)
			}
			m, err := f.mgmt(cmd.Context())
			if err != nil {
				return err
			}
			n, err := m.download(cmd.Context(), "/management/snapshot", out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Wrote a checked snapshot of %d bytes to %s (mode 0600).\n", n, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write (must not exist)")
	return cmd
}

// download saves the answer of GET path to the file out: it writes a
// temporary file beside it (mode 0600), checks it opens as a database,
// and only then renames it into place, so that out is never a partial
// or damaged copy.
func (m *mgmt) download(ctx context.Context, path, out string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	resp, err := m.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return 0, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}

	tmp, err := os.CreateTemp(filepath.Dir(out), ".keygate-snapshot-*")
	if err != nil {
		return 0, fmt.Errorf("writing snapshot: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	n, err := io.Copy(tmp, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("downloading snapshot: %w", err)
	}

	db, err := bolt.Open(tmp.Name(), bolt.Options{})
	if err != nil {
		return 0, fmt.Errorf("checking snapshot: %w", err)
	}
	db.Close()
	if err := os.Rename(tmp.Name(), out); err != nil {
		return 0, fmt.Errorf("writing snapshot: %w", err)
	}
	return n, nil
}
