package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// dataDir is the layout of a vault's data folder.
type dataDir string

func (d dataDir) path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

func (d dataDir) database() string  { return d.path("vault.db") }
func (d dataDir) masterKey() string { return d.path("master.key") }
func (d dataDir) caFile() string    { return d.path("tls", "ca.pem") }
func (d dataDir) adminFile() string { return d.path("admin.json") }

// The local agent's credential and the environment its clients need.
func (d dataDir) agentCredentialFile() string { return d.path("agent", "credential") }
func (d dataDir) agentEnvFile() string        { return d.path("agent", "identity.env") }

// prepare creates the data folder (mode 0700) and its tls folder, or
// checks that an existing one is not open to other users: it holds the
// master key and the administrator's credentials.
func (d dataDir) prepare() error {
	fi, err := os.Stat(string(d))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(string(d), 0o700); err != nil {
			return fmt.Errorf("creating data folder: %w", err)
		}
	case err != nil:
		return fmt.Errorf("reading data folder: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("data folder %s is not a folder", d)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("data folder %s is open to other users (mode %04o): it holds keys and credentials; run `chmod 700 %s`",
			d, fi.Mode().Perm(), d)
	}
	if err := os.MkdirAll(d.path("tls"), 0o700); err != nil {
		return fmt.Errorf("creating tls folder: %w", err)
	}
	return nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
