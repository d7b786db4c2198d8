package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// How Open guards against a damaged file.
//
// bbolt reads the file through a memory map and trusts what it finds: a
// damaged page can make it panic (it asserts on page headers), and an
// offset pointing past the end of the file makes the CPU fault, which
// kills the process unless the goroutine has asked, with
// debug.SetPanicOnFault, for a fault to be a panic instead. So Open opens
// and checks the file with faults turned into panics for its goroutine
// (and restored after), and recovers every panic into ErrCorrupt. In
// order:
//
//  1. bbolt.Open, which validates the two meta pages (checksummed) and
//     reads the freelist.
//  2. The file must be as long as the pages the meta page says are in use.
//     A truncated file fails here, before anything reads the missing pages.
//  3. A walk of every bucket with a cursor: every key and value must lie
//     inside the file's pages, keys must ascend, and a lookup of each key
//     must find the value the scan found (which exercises the branch pages
//     that Get relies on and a scan does not).
//  4. bbolt's own consistency check, tx.Check: every page reachable once,
//     freed or in use, keys ordered across pages. It runs in a goroutine of
//     bbolt's that recovers panics but cannot turn faults into panics, so
//     it runs last, over pages that the walk has already read safely.
//
// TODO: a branch page whose key offset alone is damaged, so that it points
// outside the file while no lookup in step 3 compares against that key,
// would still fault inside tx.Check and stop the process. Closing that gap
// needs bounds checks on branch pages, which bbolt does not expose; the
// process stops before serving anything, so no wrong data goes out.
//
// The checks cost one pass over the file at start-up, which is small for
// the size of database a vault keeps.

// maxCheckErrors bounds how many of bbolt's findings an error repeats.
const maxCheckErrors = 3

// openDB opens the bbolt database at path, turning a panic or a fault
// inside bbolt into ErrCorrupt.
func openDB(path string, timeout time.Duration) (db *bbolt.DB, err error) {
	// bbolt holds no *DB to close when it panics half-way, so keep the file
	// it opened: unlocking and closing it lets the next Open of the same
	// path (a restored file, say) proceed.
	var file *os.File
	opts := &bbolt.Options{
		Timeout:         timeout,
		InitialMmapSize: initialMmapSize,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	}

	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				unlock(file)
				file.Close()
			}
			// TODO: the memory map made before the panic stays mapped;
			// bbolt gives no way to unmap it. Acceptable because a damaged
			// database stops the process from starting.
			db, err = nil, corrupt(path, panicCause(r))
		}
	}()

	db, err = bbolt.Open(path, 0o600, opts)
	if err != nil {
		return nil, openError(path, timeout, err)
	}
	return db, nil
}

// openError classifies an error of bbolt.Open.
func openError(path string, timeout time.Duration, err error) error {
	var (
		pathErr *fs.PathError
		errno   syscall.Errno
	)
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("opening database %s: %w (waited %s for its lock)", path, ErrLocked, timeout)
	case errors.As(err, &pathErr), errors.As(err, &errno):
		// The file could not be opened, read or mapped: permissions, a
		// missing directory, no memory. Not the file's fault.
		return fmt.Errorf("opening database %s: %w", path, err)
	default:
		// Everything else bbolt reports is about the file's contents:
		// invalid or mismatched meta pages, a file too small to hold them.
		return corrupt(path, err)
	}
}

// panicCause describes a panic recovered while reading the file.
func panicCause(r any) error {
	// A fault that SetPanicOnFault turned into a panic carries the address;
	// bbolt's own panics are assertions about page contents.
	if _, ok := r.(interface{ Addr() uintptr }); ok {
		return errors.New("a page or record lies outside the file (memory fault)")
	}
	return fmt.Errorf("reading file: %v", r)
}

// dbStats describes a checked database, for the log.
type dbStats struct {
	size    int64
	buckets int
	records int
}

// verify runs checks 2 to 4 above on an open database. Its errors are
// causes for ErrCorrupt.
func verify(db *bbolt.DB) (stats dbStats, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = panicCause(r)
		}
	}()

	err = db.View(func(btx *bbolt.Tx) error {
		stats.size = btx.Size()
		if err := checkLength(db.Path(), stats.size); err != nil {
			return err
		}
		data := db.Info().Data
		w := walker{file: span{start: data, end: data + uintptr(stats.size)}}
		if err := w.walk(btx); err != nil {
			return err
		}
		stats.buckets, stats.records = w.buckets, w.records
		return drainCheck(btx.Check())
	})
	return stats, err
}

// checkLength checks that the file holds the size bytes of pages in use.
func checkLength(path string, size int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() < size {
		return fmt.Errorf("file is %d bytes, but its pages in use reach to %d: it was truncated", fi.Size(), size)
	}
	return nil
}

// Sizes from bbolt's file format, for the bounds of an inline bucket.
const (
	bucketHeaderSize = 16 // root page ID and sequence
	pageHeaderSize   = 16
	leafElementSize  = 16
)

// walker walks every record of a read transaction (check 3 above).
type walker struct {
	file    span // the pages in use, in memory
	buckets int
	records int
}

// span is a range of memory.
type span struct{ start, end uintptr }

// contains reports whether b lies within s. A nil b, the value of a nested
// bucket, occupies no memory.
func (s span) contains(b []byte) bool {
	if b == nil {
		return true
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= s.start && p <= s.end && uintptr(len(b)) <= s.end-p
}

// walk checks every top-level bucket.
func (w *walker) walk(btx *bbolt.Tx) error {
	return btx.ForEach(func(name []byte, b *bbolt.Bucket) error {
		if !w.file.contains(name) {
			return errors.New("a bucket name points outside the file")
		}
		if b == nil {
			return fmt.Errorf("bucket %q: the root holds a value, not a bucket", name)
		}
		w.buckets++
		if err := w.walkBucket(b); err != nil {
			return fmt.Errorf("bucket %q: %w", name, err)
		}
		return nil
	})
}

// walkBucket checks the records of one bucket.
//
// bbolt makes key and value slices from offsets stored in the file; a
// damaged offset could point anywhere in memory, and reading there would
// fault or return bytes that are not the database's, so each must lie
// within the bucket's memory. For most buckets that is the file. A small
// bucket is stored inline in its name's value, which bbolt may copy to the
// heap; its records must then lie within the bytes such a value needs.
func (w *walker) walkBucket(b *bbolt.Bucket) error {
	var (
		prev   []byte
		inline = b.Root() == 0
		used   = span{start: ^uintptr(0)} // memory the records occupy
		need   = uintptr(bucketHeaderSize + pageHeaderSize)
	)
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if !inline && (!w.file.contains(k) || !w.file.contains(v)) {
			return fmt.Errorf("record after %q points outside the file", prev)
		}
		used = used.extend(k).extend(v)
		need += leafElementSize + uintptr(len(k)+len(v))
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			return fmt.Errorf("key %q follows %q: keys out of order", k, prev)
		}
		// A lookup walks the branch pages by their keys; a scan does
		// not. A record a scan finds but Get cannot is wrong data.
		if got := b.Get(k); !bytes.Equal(got, v) {
			return fmt.Errorf("key %q: lookup disagrees with scan", k)
		}
		prev = k
		w.records++
	}
	if base := uintptr(unsafe.Pointer(b.InBucket)); inline && prev != nil &&
		(used.start < base || used.end > base+need) {
		return errors.New("inline records point outside the bucket")
	}
	return nil
}

// extend returns s grown to cover b.
func (s span) extend(b []byte) span {
	if b == nil {
		return s
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return span{start: min(s.start, p), end: max(s.end, p+uintptr(len(b)))}
}

// drainCheck collects the findings of tx.Check. It reads the channel to
// the end so that Check's goroutine finishes.
func drainCheck(findings <-chan error) error {
	var (
		first []string
		n     int
	)
	for err := range findings {
		if n < maxCheckErrors {
			first = append(first, err.Error())
		}
		n++
	}
	switch {
	case n == 0:
		return nil
	case n > maxCheckErrors:
		return fmt.Errorf("consistency check found %d problems: %s; and %d more",
			n, strings.Join(first, "; "), n-maxCheckErrors)
	default:
		return fmt.Errorf("consistency check found %d problems: %s", n, strings.Join(first, "; "))
	}
}
