package seal_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/internal/seal"
)

// writeKeyFile writes content to a new file in a temporary directory with
// mode perm and returns its path.
func writeKeyFile(t *testing.T, content string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode passes through the umask; set it exactly.
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadKeyFile(t *testing.T) {
	k := mustKey(t, testKeyBytes())
	tests := []struct {
		name    string
		content string
		perm    os.FileMode
		wantErr []string // substrings; nil means success
	}{
		{"0600 with newline", k.Encode() + "\n", 0o600, nil},
		{"0400 without newline", k.Encode(), 0o400, nil},
		{"CRLF", k.Encode() + "\r\n", 0o600, nil},
		{"0644 refused", k.Encode() + "\n", 0o644, []string{"mode is 0644", "chmod 600", "master.key"}},
		{"0640 refused", k.Encode() + "\n", 0o640, []string{"mode is 0640", "chmod 600"}},
		{"0700 refused", k.Encode() + "\n", 0o700, []string{"mode is 0700", "chmod 600"}},
		{"empty", "", 0o600, []string{"master.key", "key is empty"}},
		{"not base64", "this is not a key\n", 0o600, []string{"master.key", "not base64"}},
		{"short key", k.Encode()[:20] + "\n", 0o600, []string{"master.key", "want 32"}},
		{"too large", strings.Repeat("A", 4096), 0o600, []string{"master.key", "larger than"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeKeyFile(t, tt.content, tt.perm)
			got, err := seal.LoadKeyFile(path)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("LoadKeyFile: %v", err)
				}
				if got.ID() != k.ID() {
					t.Errorf("loaded key ID %s, want %s", got.ID(), k.ID())
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadKeyFile succeeded, want error containing %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), k.Encode()[:12]) {
				t.Errorf("error %q contains key material", err)
			}
		})
	}
}

func TestLoadKeyFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	_, err := seal.LoadKeyFile(dir)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("LoadKeyFile(directory) error = %v, want one saying not a regular file", err)
	}
}

func TestLoadKeyFileMissing(t *testing.T) {
	_, err := seal.LoadKeyFile(filepath.Join(t.TempDir(), "absent.key"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadKeyFile(absent) error = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")

	k1, created, err := seal.LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("first LoadOrCreateKeyFile: %v", err)
	}
	if !created {
		t.Error("first call: created = false, want true")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("created file mode = %#o, want 0600", got)
	}

	k2, created, err := seal.LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("second LoadOrCreateKeyFile: %v", err)
	}
	if created {
		t.Error("second call: created = true, want false")
	}
	if k2.ID() != k1.ID() {
		t.Errorf("second call loaded key %s, want %s", k2.ID(), k1.ID())
	}
	if k3, err := seal.LoadKeyFile(path); err != nil || k3.ID() != k1.ID() {
		t.Errorf("LoadKeyFile of the created file = %s, %v; want %s", k3.ID(), err, k1.ID())
	}
}

func TestLoadOrCreateKeyFileRefusesLooseMode(t *testing.T) {
	path := writeKeyFile(t, mustKey(t, testKeyBytes()).Encode()+"\n", 0o644)
	_, created, err := seal.LoadOrCreateKeyFile(path)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("error = %v, want one saying chmod 600", err)
	}
	if created {
		t.Error("created = true for an existing file")
	}
}

func TestLoadOrCreateKeyFileMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "master.key")
	if _, _, err := seal.LoadOrCreateKeyFile(path); err == nil {
		t.Error("LoadOrCreateKeyFile in a missing directory succeeded")
	}
}

// TestLoadOrCreateKeyFileRace checks that processes starting together agree
// on one key: exactly one creates it and the rest load it.
func TestLoadOrCreateKeyFileRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	const n = 16
	var (
		wg      sync.WaitGroup
		ids     [n]string
		created [n]bool
		errs    [n]error
	)
	for i := range n {
		wg.Go(func() {
			var k seal.Key
			k, created[i], errs[i] = seal.LoadOrCreateKeyFile(path)
			ids[i] = k.ID()
		})
	}
	wg.Wait()

	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("call %d: %v", i, errs[i])
		}
		if created[i] {
			creators++
		}
		if ids[i] != ids[0] {
			t.Errorf("call %d got key %s, call 0 got %s", i, ids[i], ids[0])
		}
	}
	if creators != 1 {
		t.Errorf("%d calls created the file, want 1", creators)
	}
}
