// Package atomicfile writes files so that a reader never sees half of
// one: the data goes to a temporary file beside the target, which is
// synced and then renamed over it.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data, with the given mode. After a failure
// path is as it was, and no temporary file is left.
func Write(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a failure; a renamed file is gone already
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
