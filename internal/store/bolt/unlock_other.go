//go:build !unix

package bolt

import "os"

// unlock is a no-op where bbolt locks with something other than flock
// (LockFileEx on Windows): those locks go with the file handle.
func unlock(*os.File) {}
