package seal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxKeyFileSize bounds what LoadKeyFile reads: the text form of a key is
// 44 bytes, so anything much larger is the wrong file.
const maxKeyFileSize = 1024

// LoadKeyFile reads a key file: the base64 text form of a 32-byte key (see
// Key.Encode), a trailing newline allowed.
//
// The file must be a regular file whose mode grants nothing beyond 0600
// (0600 and 0400 pass, 0640 and 0644 do not), because anyone who reads it
// can read every record. The check is made on the opened file, so it holds
// for what is actually read. When the file does not exist the error wraps
// fs.ErrNotExist.
func LoadKeyFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("reading key file: %w", err)
	}
	defer f.Close()

	if err := checkKeyFileMode(f, path); err != nil {
		return Key{}, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return Key{}, fmt.Errorf("reading key file %s: %w", path, err)
	}
	if len(b) > maxKeyFileSize {
		return Key{}, fmt.Errorf("reading key file %s: file is larger than %d bytes, not a key file", path, maxKeyFileSize)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return Key{}, fmt.Errorf("reading key file %s: %w", path, err)
	}
	return k, nil
}

// checkKeyFileMode refuses a key file that is not a regular file or that
// group or others may access.
func checkKeyFileMode(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("checking key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("checking key file %s: not a regular file (mode %s)", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&^0o600 != 0 {
		return fmt.Errorf("checking key file %s: mode is %#o, want 0600 or stricter: run chmod 600 %s",
			path, perm, path)
	}
	return nil
}

// LoadOrCreateKeyFile loads the key file at path, or, when there is no file
// there, creates one holding a new random key. created reports which
// happened. The directory must exist and support hard links.
//
// A new key is written to a temporary file (created exclusively, mode 0600)
// that is synced and then linked to path; the directory is synced before
// the key is returned, so that no record is ever sealed under a key that a
// crash could lose. Linking fails when path exists, so processes racing to
// create the file agree on one key (the losers load the winner's), and no
// reader ever sees a half-written file.
func LoadOrCreateKeyFile(path string) (k Key, created bool, err error) {
	k, err = LoadKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	k, err = createKeyFile(path)
	if errors.Is(err, fs.ErrExist) {
		k, err = LoadKeyFile(path)
		return k, false, err
	}
	if err != nil {
		return Key{}, false, err
	}
	return k, true, nil
}

// createKeyFile writes a new key to path, which must not exist. When it
// does, the error wraps fs.ErrExist.
func createKeyFile(path string) (Key, error) {
	k, err := GenerateKey()
	if err != nil {
		return Key{}, err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return Key{}, fmt.Errorf("creating key file: %w", err)
	}
	defer os.Remove(tmp.Name()) // litter after any failure below

	if err := writeAndSync(tmp, k.Encode()+"\n"); err != nil {
		return Key{}, fmt.Errorf("writing key file %s: %w", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return Key{}, fmt.Errorf("creating key file: %w", err)
	}
	// Drop the temporary name before the directory sync, so that a
	// crash leaves no second copy of the key behind.
	os.Remove(tmp.Name())
	if err := syncDir(dir); err != nil {
		return Key{}, fmt.Errorf("syncing directory of key file %s: %w", path, err)
	}
	return k, nil
}

// writeAndSync writes s to f, syncs and closes it.
func writeAndSync(f *os.File, s string) error {
	_, err := io.WriteString(f, s)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
