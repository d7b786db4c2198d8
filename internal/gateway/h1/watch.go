package h1

import (
	"io"
	"sync"
	"time"
)

// connReader is what a connection's bufio.Reader reads from: the
// connection, bounded while a request head is read, after the byte a
// watcher's read took, if any.
type connReader struct {
	c *conn

	limited bool
	remain  int64

	// hasByte is set by a watcher that read a byte of the next request.
	hasByte bool
	b       [1]byte
}

func (cr *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if cr.limited {
		if cr.remain <= 0 {
			return 0, io.EOF
		}
		p = p[:min(int64(len(p)), cr.remain)]
	}
	if cr.hasByte {
		cr.hasByte = false
		p[0] = cr.b[0]
		cr.remain--
		return 1, nil
	}
	n, err := cr.c.nc.Read(p)
	cr.remain -= int64(n)
	return n, err
}

func (cr *connReader) limit(n int64)  { cr.limited, cr.remain = true, n }
func (cr *connReader) unlimit()       { cr.limited = false }
func (cr *connReader) hitLimit() bool { return cr.limited && cr.remain <= 0 }

// watchDelay is how long a request runs before its connection is watched
// for the client going away. net/http watches every request from its
// start, which costs a goroutine and a read per request; a request that
// ends sooner than this is not worth cancelling.
const watchDelay = 100 * time.Millisecond

// aLongTimeAgo is a deadline that has passed, to interrupt a read.
var aLongTimeAgo = time.Unix(1, 0)

// watcher watches a connection while its request runs: a read that ends
// in an error or end of file means the client went away, and cancels
// the connection's context. Only once the request's body has been read,
// and only when no more of the client's bytes wait in the buffer.
type watcher struct {
	c     *conn
	timer *time.Timer

	mu        sync.Mutex
	inHandler bool
	bodyRead  bool // the request's body has been read to its end
	pending   bool // more request bytes were already buffered
	running   bool
	aborting  bool
	done      chan struct{}
}

// begin arms the watcher for the request w answers.
func (wt *watcher) begin(w *response) {
	wt.mu.Lock()
	wt.inHandler = true
	wt.bodyRead = !w.hasBody
	wt.pending = wt.c.br.Buffered() > 0
	wt.mu.Unlock()
	if wt.timer == nil {
		wt.timer = time.AfterFunc(watchDelay, wt.fire)
	} else {
		wt.timer.Reset(watchDelay)
	}
}

// bodyDone notes that the handler read the request's body to its end.
func (wt *watcher) bodyDone() {
	pending := wt.c.br.Buffered() > 0
	wt.mu.Lock()
	wt.bodyRead, wt.pending = true, pending
	wt.mu.Unlock()
}

// fire starts watching, on the timer's goroutine, and waits there for
// the read to end.
func (wt *watcher) fire() {
	wt.mu.Lock()
	if !wt.inHandler || wt.pending || wt.running {
		wt.mu.Unlock()
		return
	}
	if !wt.bodyRead {
		// The handler is still reading the body: look again later.
		wt.timer.Reset(watchDelay)
		wt.mu.Unlock()
		return
	}
	wt.running, wt.aborting = true, false
	done := make(chan struct{})
	wt.done = done
	// Under the lock, so that an abort's deadline comes after this one.
	wt.c.nc.SetReadDeadline(time.Time{})
	wt.mu.Unlock()

	cr := wt.c.cr
	n, err := wt.c.nc.Read(cr.b[:])

	wt.mu.Lock()
	if n == 1 {
		cr.hasByte = true
	}
	if err != nil && !wt.aborting {
		wt.c.cancel()
	}
	wt.running = false
	close(done)
	wt.mu.Unlock()
}

// end disarms the watcher when the handler returns (or hijacks the
// connection), interrupting a read in progress and waiting for it.
func (wt *watcher) end() {
	wt.mu.Lock()
	wt.inHandler = false
	running, done := wt.running, wt.done
	if running {
		wt.aborting = true
	}
	wt.mu.Unlock()
	if wt.timer != nil {
		wt.timer.Stop()
	}
	if running {
		wt.c.nc.SetReadDeadline(aLongTimeAgo)
		<-done
	}
}

// stop disarms the watcher for good, as the connection closes.
func (wt *watcher) stop() { wt.end() }
