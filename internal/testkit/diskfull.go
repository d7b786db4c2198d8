package testkit

import (
	"os"
	"sync"
	"testing"
)

// DiskFull is a destination that can be made to run out of space and
// given space again: while full, writes go to /dev/full, where the
// kernel refuses them with ENOSPC as a full disk does; otherwise they are
// kept in a Buffer. Safe for concurrent use.
type DiskFull struct {
	Buffer

	mu   sync.Mutex
	full bool
	dev  *os.File
}

// NewDiskFull opens /dev/full for a test; it is closed when the test
// ends.
func NewDiskFull(t testing.TB) *DiskFull {
	t.Helper()
	dev, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("opening /dev/full, the kernel's always-full device that this test needs: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	return &DiskFull{dev: dev}
}

// SetFull makes writes fail (true) or succeed (false).
func (d *DiskFull) SetFull(full bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.full = full
}

// Write writes b to /dev/full while full, else to the buffer.
func (d *DiskFull) Write(b []byte) (int, error) {
	d.mu.Lock()
	full := d.full
	d.mu.Unlock()
	if full {
		return d.dev.Write(b)
	}
	return d.Buffer.Write(b)
}
