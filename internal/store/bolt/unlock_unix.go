//go:build unix

package bolt

import (
	"os"
	"syscall"
)

// unlock drops the flock that bbolt took on f. Closing f alone does not:
// the lock belongs to the open file, which bbolt's memory map keeps open.
func unlock(f *os.File) {
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
