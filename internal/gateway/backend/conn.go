package backend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// connPool is an HTTP/1.1 client for backend servers that does each
// exchange on the caller's goroutine: it writes the request and reads the
// answer on a kept-alive connection, then puts the connection back once
// the body has been read to its end.
//
// net/http's Transport hands every request to a writer and a reader
// goroutine per connection; for a proxy on a small machine those handoffs
// cost more than the exchange itself (see bench/README.md). This keeps
// what a proxy needs of it: keep-alive, a response header timeout,
// cancellation, one retry of a request that found a kept-alive
// connection closed, upgrades (WebSocket) through the connection, and
// interim (1xx) answers handed to the request's Interim as they come.
type connPool struct {
	dial          func(ctx context.Context, addr string) (net.Conn, error)
	headerTimeout time.Duration
	idleTimeout   time.Duration
	maxIdle       int

	// maxInterim is how many interim answers a server may send before
	// its final one.
	maxInterim int

	mu     sync.Mutex
	idle   map[string][]*pconn
	closed bool
}

// pconn is a connection to one server with its buffers.
type pconn struct {
	net.Conn
	addr      string
	br        *bufio.Reader // reads through head
	bw        *bufio.Writer
	head      *headLimit
	idleSince time.Time
}

// Sizes of a backend connection's buffers, and the most an answer's head
// (status line and header fields, interim answers included) may take:
// net/http's Transport allows 10 MB, nginx 4 or 8 KB by default; a
// backend that sends more is broken or hostile, and gets the client a
// 502 rather than the gateway's memory.
const (
	readBufferSize = 16 << 10
	maxAnswerHead  = 64 << 10
)

// errHeadTooLarge ends reading an answer whose head is too large.
var errHeadTooLarge = fmt.Errorf("the answer's head is larger than %d KiB", maxAnswerHead>>10)

// headLimit counts what the connection's buffer reads while an answer's
// head is read, and fails the read once that passes the limit. The
// buffer may read a little of the body ahead, hence its size beside the
// limit.
type headLimit struct {
	r    io.Reader
	on   bool
	left int
}

func (h *headLimit) Read(p []byte) (int, error) {
	if !h.on {
		return h.r.Read(p)
	}
	if h.left <= 0 {
		return 0, errHeadTooLarge
	}
	p = p[:min(len(p), h.left)]
	n, err := h.r.Read(p)
	h.left -= n
	return n, err
}

// arm starts counting, for a head; disarm stops.
func (h *headLimit) arm()    { h.on, h.left = true, maxAnswerHead+readBufferSize }
func (h *headLimit) disarm() { h.on = false }

func newConnPool(dial func(ctx context.Context, addr string) (net.Conn, error), headerTimeout time.Duration) *connPool {
	return &connPool{dial: dial, headerTimeout: headerTimeout, idleTimeout: 90 * time.Second,
		maxIdle: 1024, maxInterim: MaxInterim, idle: map[string][]*pconn{}}
}

// MaxInterim is how many interim (1xx) answers a server may send before
// its final answer; one more ends the exchange with an error. Early
// Hints come one or two to an answer, 102 Processing one every few
// seconds of a long request; the response header timeout still bounds
// the wait for the final answer however many come, and this bounds what
// a server that sends them without end can make the gateway read and
// relay within it (or without it, when none is set).
const MaxInterim = 16

// Interim receives the interim (1xx) answers a server sends before its
// final one, but 101 Switching Protocols, which ends the exchange as a
// final answer does. It is called on the goroutine of the exchange, in
// the order the answers come; an error ends the exchange.
type Interim interface {
	Interim(code int, header http.Header) error
}

// InterimFunc is a function as an Interim.
type InterimFunc func(code int, header http.Header) error

// Interim calls f.
func (f InterimFunc) Interim(code int, header http.Header) error { return f(code, header) }

type interimKey struct{}

// WithInterim returns ctx carrying rcv: a request sent through a
// Backend's Transport with that context hands its interim answers to rcv.
// (Send takes Outbound.Interim instead.) Interim answers of a request
// without one are read and dropped.
func WithInterim(ctx context.Context, rcv Interim) context.Context {
	return context.WithValue(ctx, interimKey{}, rcv)
}

func interimOf(ctx context.Context) Interim {
	rcv, _ := ctx.Value(interimKey{}).(Interim)
	return rcv
}

// RoundTrip sends req to req.URL.Host and returns the answer. The body
// must be read to its end and closed for the connection to be used again.
func (p *connPool) RoundTrip(req *http.Request) (*http.Response, error) {
	return p.do(req.Context(), req.URL.Host, &request{
		req:     req,
		write:   func(w *bufio.Writer) error { return req.Write(w) },
		retry:   req.Body == nil || req.Body == http.NoBody,
		close:   req.Close,
		interim: interimOf(req.Context()),
	})
}

// Send sends out to addr and returns the answer, as RoundTrip does.
func (p *connPool) Send(addr string, out *Outbound) (*http.Response, error) {
	return p.do(out.In.Context(), addr, &request{req: out.In, write: out.write, retry: out.Body == nil,
		interim: out.Interim})
}

// request is an exchange as the pool sees it.
type request struct {
	// req is what the answer is read for (its method says whether the
	// answer has a body).
	req *http.Request

	// write writes the request on a connection.
	write func(*bufio.Writer) error

	// retry allows sending again on a fresh connection: the request has
	// no body that a first attempt consumed.
	retry bool

	// close asks the server to close the connection after answering.
	close bool

	// interim, when set, receives the interim answers.
	interim Interim
}

// do sends rq on a kept-alive connection to addr, or a new one, and reads
// the answer. A request that found a kept-alive connection closed by the
// server goes again on a fresh one when rq.retry allows.
func (p *connPool) do(ctx context.Context, addr string, rq *request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		// The retry dials: the other idle connections are likely as dead
		// as the first (the server restarted, or closed them together).
		pc, reused, err := p.get(ctx, addr, attempt > 0)
		if err != nil {
			return nil, err
		}
		resp, err := p.exchange(ctx, pc, rq)
		if err == nil {
			return resp, nil
		}
		pc.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		// A kept-alive connection the server closed meanwhile fails
		// before any answer; a request without a body can go again on a
		// fresh one, as net/http's Transport does.
		var ne noAnswer
		if reused && attempt == 0 && errors.As(err, &ne) && rq.retry {
			continue
		}
		return nil, err
	}
}

// noAnswer marks an error that came before any byte of the answer.
type noAnswer struct{ error }

func (e noAnswer) Unwrap() error { return e.error }

// exchange writes rq on pc and reads the answer.
func (p *connPool) exchange(ctx context.Context, pc *pconn, rq *request) (*http.Response, error) {
	// Cancellation unblocks the exchange by expiring the connection's
	// deadlines; stop reports whether that has happened.
	stop := context.AfterFunc(ctx, func() { pc.SetDeadline(time.Unix(1, 0)) })

	if err := rq.write(pc.bw); err != nil {
		stop()
		return nil, noAnswer{fmt.Errorf("writing request to %s: %w", pc.addr, err)}
	}
	if err := pc.bw.Flush(); err != nil {
		stop()
		return nil, noAnswer{fmt.Errorf("writing request to %s: %w", pc.addr, err)}
	}

	if p.headerTimeout > 0 {
		pc.SetReadDeadline(time.Now().Add(p.headerTimeout))
	}
	resp, err := p.readResponse(pc, rq)
	if err != nil {
		stop()
		return nil, err
	}
	pc.SetReadDeadline(time.Time{})
	if ctx.Err() != nil {
		// Cancelled between the two lines above: expire again.
		pc.SetDeadline(time.Unix(1, 0))
	}

	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection now belongs to the upgraded protocol.
		stop()
		resp.Body = &upgraded{pc: pc}
		return resp, nil
	}
	resp.Body = &body{rc: resp.Body, pc: pc, pool: p, stop: stop, reusable: !resp.Close && !rq.close}
	return resp, nil
}

// readResponse reads the answer, handing interim 1xx answers to
// rq.interim on the way.
//
// The read deadline the caller set for the head stays as it is: it
// bounds the wait for the final answer, not for the next interim one, so
// that a server cannot hold a client past the response header timeout by
// sending 1xx answers; maxInterim bounds how many it can send within it.
func (p *connPool) readResponse(pc *pconn, rq *request) (*http.Response, error) {
	pc.head.arm()
	defer pc.head.disarm()
	if _, err := pc.br.Peek(1); err != nil {
		return nil, noAnswer{fmt.Errorf("reading answer from %s: %w", pc.addr, err)}
	}
	for n := 0; ; n++ {
		resp, err := http.ReadResponse(pc.br, rq.req)
		if err != nil {
			return nil, fmt.Errorf("reading answer from %s: %w", pc.addr, err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if n == p.maxInterim {
			return nil, fmt.Errorf("reading answer from %s: more than %d interim (1xx) answers", pc.addr, p.maxInterim)
		}
		if rq.interim == nil {
			continue
		}
		if err := rq.interim.Interim(resp.StatusCode, resp.Header); err != nil {
			return nil, fmt.Errorf("passing on interim answer %d from %s: %w", resp.StatusCode, pc.addr, err)
		}
	}
}

// get returns an idle connection to addr, or a new one (always when
// fresh).
func (p *connPool) get(ctx context.Context, addr string, fresh bool) (pc *pconn, reused bool, err error) {
	now := time.Now()
	p.mu.Lock()
	for list := p.idle[addr]; len(list) > 0 && !fresh; list = p.idle[addr] {
		pc = list[len(list)-1]
		p.idle[addr] = list[:len(list)-1]
		if now.Sub(pc.idleSince) < p.idleTimeout {
			p.mu.Unlock()
			return pc, true, nil
		}
		pc.Close()
	}
	p.mu.Unlock()

	conn, err := p.dial(ctx, addr)
	if err != nil {
		return nil, false, err
	}
	head := &headLimit{r: conn}
	return &pconn{Conn: conn, addr: addr, br: bufio.NewReaderSize(head, readBufferSize), head: head,
		bw: bufio.NewWriterSize(conn, 8<<10)}, false, nil
}

// put returns a connection whose exchange is complete.
func (p *connPool) put(pc *pconn) {
	pc.idleSince = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[pc.addr]) >= p.maxIdle {
		pc.Close()
		return
	}
	p.idle[pc.addr] = append(p.idle[pc.addr], pc)
}

// CloseIdleConnections closes the idle connections; later exchanges open
// new ones.
func (p *connPool) CloseIdleConnections() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, list := range p.idle {
		for _, pc := range list {
			pc.Close()
		}
		delete(p.idle, addr)
	}
}

// body is an answer's body; reading it to the end frees its connection.
type body struct {
	rc       io.ReadCloser
	pc       *pconn
	pool     *connPool
	stop     func() bool
	reusable bool
	done     bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

// Close frees the connection: back to the pool when the body was read
// to its end, closed otherwise.
func (b *body) Close() error {
	b.finish(false)
	return nil
}

func (b *body) finish(complete bool) {
	if b.done {
		return
	}
	b.done = true
	// stop is false when cancellation already expired the deadlines.
	if b.stop() && complete && b.reusable {
		b.pool.put(b.pc)
		return
	}
	b.pc.Close()
}

// upgraded is the connection after 101 Switching Protocols, as
// ReverseProxy expects it: readable, writable and closable.
type upgraded struct{ pc *pconn }

func (u *upgraded) Read(p []byte) (int, error)  { return u.pc.br.Read(p) }
func (u *upgraded) Write(p []byte) (int, error) { return u.pc.Conn.Write(p) }
func (u *upgraded) Close() error                { return u.pc.Conn.Close() }
