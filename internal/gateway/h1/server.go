// Package h1 serves HTTP/1.0 and HTTP/1.1 for the gateway's listeners,
// with less work per request than net/http's server: no goroutine and no
// read started behind every request, no context made per request, and
// the answer's head and a short body written in one system call.
//
// It keeps what net/http's server does that clients and the gateway's
// handler rely on: requests parsed and checked by net/http's own
// ReadRequest, keep-alive and pipelining, HTTP/1.0, Expect:
// 100-continue, interim 1xx answers (103 Early Hints) written with
// WriteHeader, Content-Length computed for short answers and chunked
// encoding for long ones, content sniffing, the Date field, trailers,
// Flush and Hijack (for upgrades), header and idle timeouts, the error
// answers (400, 417, 431, 501, 505), recovery from handler panics, and
// graceful shutdown. A request's context ends with its connection; a
// request still running after watchDelay watches its connection, so that
// a client that goes away cancels it as it would under net/http.
//
// For TLS, Serve completes the handshake itself and hands a connection
// that negotiated another protocol (h2) to the function registered for
// it, which is how the gateway keeps net/http's HTTP/2 server.
package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Server serves HTTP/1.x. Set its fields before Serve; it is safe for
// concurrent use after.
type Server struct {
	// Handler answers requests.
	Handler http.Handler

	// TLSConfig, when set, makes Serve complete a TLS handshake on each
	// connection before reading requests.
	TLSConfig *tls.Config

	// NextProto takes a connection that negotiated its protocol by ALPN
	// (h2); it owns the connection from then on. A protocol missing
	// from it is served as HTTP/1.1.
	NextProto map[string]func(*tls.Conn)

	// HandshakeDone, when set, is called after every TLS handshake, with
	// the raw connection and the handshake's error.
	HandshakeDone func(raw net.Conn, err error)

	// ReadHeaderTimeout bounds the TLS handshake and the reading of each
	// request's head; IdleTimeout the wait for the next request on a
	// kept-alive connection. Zero means no limit.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration

	// MaxHeaderBytes bounds a request's head; zero means
	// http.DefaultMaxHeaderBytes.
	MaxHeaderBytes int

	// BaseContext is the parent of the connections' contexts; nil means
	// context.Background.
	BaseContext context.Context

	// Logger receives what net/http's server writes to its ErrorLog, at
	// debug level; nil discards it.
	Logger *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   atomic.Bool
}

// ErrServerClosed is what Serve returns after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// Serve accepts connections on ln and serves each on its own goroutine
// until Shutdown or Close, then returns ErrServerClosed. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	if !s.trackListener(ln, true) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.trackListener(ln, false)

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			// Too many open files and the like pass: wait and retry, as
			// net/http does.
			if temporaryAccept(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logf("accept error; retrying", "error", err, "delay", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := s.newConn(nc)
		if !s.trackConn(c, true) {
			nc.Close()
			continue
		}
		go c.serve()
	}
}

// Shutdown stops accepting connections, closes idle ones, and waits for
// those answering a request to finish and close, or for ctx to end, when
// it returns ctx's error. Connections handed to NextProto are not its.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	lnErr := s.closeListeners()

	wait := time.Millisecond
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		if s.closeIdle() {
			return lnErr
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			wait = min(2*wait, 500*time.Millisecond)
			timer.Reset(wait)
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.closing.Store(true)
	err := s.closeListeners()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		// The raw connection: the TLS one may still be in the making.
		c.raw.Close()
		delete(s.conns, c)
	}
	return err
}

func (s *Server) trackListener(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, ln)
		return true
	}
	if s.closing.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) closeListeners() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.closing.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

// closeIdle closes the idle connections, and new ones that have not sent
// a request in five seconds, as net/http does; it reports whether none
// is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	quiet := true
	for c := range s.conns {
		st, since := c.getState()
		if st == stateNew && time.Since(since) > 5*time.Second {
			st = stateIdle
		}
		if st != stateIdle {
			quiet = false
			continue
		}
		c.raw.Close()
		delete(s.conns, c)
	}
	return quiet
}

func (s *Server) logf(msg string, args ...any) {
	if s.Logger != nil {
		s.Logger.Debug(msg, args...)
	}
}

func (s *Server) maxHeaderBytes() int64 {
	if s.MaxHeaderBytes > 0 {
		return int64(s.MaxHeaderBytes)
	}
	return http.DefaultMaxHeaderBytes
}

// Connection states, for shutdown.
const (
	stateNew = iota
	stateActive
	stateIdle
)

// conn is one client connection.
type conn struct {
	srv *Server
	nc  net.Conn // the TLS connection for HTTPS, once handshaken
	raw net.Conn // the accepted connection

	ctx        context.Context
	cancel     context.CancelFunc
	tlsState   *tls.ConnectionState
	remoteAddr string

	cr *connReader
	br *bufio.Reader
	bw *bufio.Writer

	mu       sync.Mutex
	state    int
	since    time.Time
	hijacked bool

	lastMethod string
	res        response
	watch      watcher
}

func (s *Server) newConn(nc net.Conn) *conn {
	return &conn{srv: s, nc: nc, raw: nc, state: stateNew, since: time.Now(),
		remoteAddr: nc.RemoteAddr().String()}
}

func (c *conn) setState(st int) {
	c.mu.Lock()
	c.state, c.since = st, time.Now()
	c.mu.Unlock()
}

func (c *conn) getState() (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.since
}

// serve serves the connection until it closes, is hijacked or handed on.
func (c *conn) serve() {
	defer func() {
		if err := recover(); err != nil && err != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.srv.logf("panic serving a request", "client", c.remoteAddr, "panic", fmt.Sprint(err),
				"stack", string(buf))
		}
		c.close()
	}()

	if c.srv.TLSConfig != nil && !c.handshake() {
		return
	}
	c.start()
	for {
		w, err := c.readRequest()
		if err != nil {
			c.replyError(err)
			return
		}
		if !c.serveRequest(w) {
			return
		}
	}
}

// handshake completes the TLS handshake, handing the connection on when
// it negotiated a protocol of NextProto. It reports whether to go on
// serving HTTP/1.x.
func (c *conn) handshake() bool {
	s := c.srv
	tc := tls.Server(c.raw, s.TLSConfig)
	c.nc = tc
	if d := s.ReadHeaderTimeout; d > 0 {
		dl := time.Now().Add(d)
		c.raw.SetReadDeadline(dl)
		c.raw.SetWriteDeadline(dl)
	}
	err := tc.Handshake()
	if s.HandshakeDone != nil {
		s.HandshakeDone(c.raw, err)
	}
	if err != nil {
		// A client speaking plain HTTP gets told, as net/http tells it.
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			err = errors.New("client sent an HTTP request to an HTTPS server")
		}
		s.logf("TLS handshake error", "client", c.remoteAddr, "error", err)
		return false
	}
	if s.ReadHeaderTimeout > 0 {
		c.raw.SetReadDeadline(time.Time{})
		c.raw.SetWriteDeadline(time.Time{})
	}
	st := tc.ConnectionState()
	c.tlsState = &st
	if next := s.NextProto[st.NegotiatedProtocol]; next != nil {
		c.handOff()
		next(tc)
		return false
	}
	return true
}

func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// start readies the connection for reading requests.
func (c *conn) start() {
	base := c.srv.BaseContext
	if base == nil {
		base = context.Background()
	}
	c.ctx, c.cancel = context.WithCancel(context.WithValue(base, http.LocalAddrContextKey, c.raw.LocalAddr()))
	c.cr = &connReader{c: c}
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(c.cr)
	c.bw = writers.Get().(*bufio.Writer)
	c.bw.Reset(c.nc)
	c.res.c = c
	c.watch.c = c
}

// handOff stops tracking a connection that is no longer served here.
func (c *conn) handOff() {
	c.mu.Lock()
	c.hijacked = true
	c.mu.Unlock()
	c.srv.trackConn(c, false)
}

// close ends a connection that was not hijacked: what the answer left
// buffered is sent, then the connection closed.
func (c *conn) close() {
	c.mu.Lock()
	hijacked := c.hijacked
	c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
	if hijacked {
		return
	}
	c.watch.stop()
	if c.bw != nil {
		c.bw.Flush()
		c.bw.Reset(nil)
		writers.Put(c.bw)
	}
	if c.br != nil {
		c.br.Reset(nil)
		readers.Put(c.br)
	}
	c.nc.Close()
	c.srv.trackConn(c, false)
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// serveRequest runs the handler for one request and finishes its answer.
// It reports whether the connection serves another.
func (c *conn) serveRequest(w *response) bool {
	s := c.srv
	req := w.req

	// Expect: only 100-continue, and only with a body to wait for.
	if expect := req.Header["Expect"]; len(expect) > 0 {
		if !httpguts.HeaderValuesContainsToken(expect[:1], "100-continue") {
			w.expectationFailed()
			return false
		}
		if req.ProtoAtLeast(1, 1) && req.ContentLength != 0 {
			w.expectContinue, w.canWriteContinue = true, true
		}
	}

	h := s.Handler
	if req.RequestURI == "*" && req.Method == "OPTIONS" {
		h = globalOptions{}
	}
	c.watch.begin(w)
	h.ServeHTTP(w, req)
	c.watch.end()
	if c.isHijacked() {
		return false
	}
	if c.ctx.Err() != nil {
		// The client went away: nobody reads an answer.
		return false
	}

	w.finish()
	if !w.reusable() {
		if w.closedBodyEarly() {
			c.closeWriteAndWait()
		}
		return false
	}
	if s.closing.Load() {
		return false
	}
	c.setState(stateIdle)
	return true
}

func (c *conn) isHijacked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hijacked
}

// closeWriteAndWait sends what is buffered and a FIN, then waits a
// moment for the client to read it before the close would reset the
// connection, as net/http does when it did not read a request's body.
func (c *conn) closeWriteAndWait() {
	c.bw.Flush()
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	time.Sleep(500 * time.Millisecond)
}

// globalOptions answers OPTIONS *, as net/http does.
type globalOptions struct{}

func (globalOptions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		io.Copy(io.Discard, io.LimitReader(r.Body, 256<<10))
	}
}

// errTooLarge is a request head past MaxHeaderBytes.
var errTooLarge = errors.New("request head too large")

// temporaryAccept reports whether an accept error passes: file
// descriptors run out, a connection reset before it was accepted.
func temporaryAccept(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) ||
		errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.ECONNRESET)
}

// statusError is a request refused with a status and a reason.
type statusError struct {
	code int
	text string
}

func (e statusError) Error() string { return e.text }

func badRequest(text string) error { return statusError{http.StatusBadRequest, text} }

// readRequest reads the next request on the connection, waiting for it
// at most IdleTimeout and for its head at most ReadHeaderTimeout.
func (c *conn) readRequest() (*response, error) {
	s := c.srv
	if c.br.Buffered() == 0 && c.lastMethod != "" {
		if d := s.IdleTimeout; d > 0 {
			c.nc.SetReadDeadline(time.Now().Add(d))
		} else {
			c.nc.SetReadDeadline(time.Time{})
		}
		if _, err := c.br.Peek(4); err != nil {
			return nil, err
		}
	}
	if d := s.ReadHeaderTimeout; d > 0 {
		c.nc.SetReadDeadline(time.Now().Add(d))
	}

	c.cr.limit(s.maxHeaderBytes() + 4096)
	if c.lastMethod == "POST" {
		// Some clients send a CRLF after a POST's body.
		peek, _ := c.br.Peek(4)
		c.br.Discard(leadingCRLF(peek))
	}
	req, err := http.ReadRequest(c.br)
	if err != nil {
		if c.cr.hitLimit() {
			return nil, errTooLarge
		}
		return nil, err
	}
	c.cr.unlimit()
	c.setState(stateActive)
	c.lastMethod = req.Method
	if err := checkRequest(req); err != nil {
		return nil, err
	}

	// The rest of the request (its body, an upgraded stream) has no
	// deadline; one without a body reads nothing more before the next.
	if req.Body != http.NoBody {
		c.nc.SetReadDeadline(time.Time{})
	}
	req = req.WithContext(c.ctx)
	req.RemoteAddr = c.remoteAddr
	req.TLS = c.tlsState
	return c.res.reset(req), nil
}

// checkRequest refuses what net/http's server refuses beyond what
// ReadRequest does.
func checkRequest(req *http.Request) error {
	if req.ProtoMajor != 1 && !isH2Preface(req) {
		return statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	// ReadRequest has moved the Host field to req.Host (an absolute
	// request target's host wins). An HTTP/1.1 request without one is
	// refused; so is one with an empty Host field, which net/http would
	// take.
	if req.ProtoAtLeast(1, 1) && req.Host == "" && req.Method != "CONNECT" && !isH2Preface(req) {
		return badRequest("missing required Host header")
	}
	if req.Host != "" && !httpguts.ValidHostHeader(req.Host) {
		return badRequest("malformed Host header")
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return badRequest("invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return badRequest("invalid header value")
			}
		}
	}
	return nil
}

// isH2Preface reports whether req is the start of HTTP/2's connection
// preface, which net/http's server passes to the handler (and then
// closes the connection).
func isH2Preface(req *http.Request) bool {
	return req.ProtoMajor == 2 && req.ProtoMinor == 0 && req.Method == "PRI" && req.RequestURI == "*"
}

func leadingCRLF(b []byte) int {
	n := 0
	for _, c := range b {
		if c != '\r' && c != '\n' {
			break
		}
		n++
	}
	return n
}

// replyError answers a request that could not be read, or closes
// quietly when the connection ended or timed out.
func (c *conn) replyError(err error) {
	const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	var se statusError
	switch {
	case err == errTooLarge:
		const public = "431 Request Header Fields Too Large"
		c.write("HTTP/1.1 " + public + errorHeaders + public)
		c.closeWriteAndWait()
	case strings.Contains(err.Error(), "unsupported transfer encoding"):
		const public = "501 Not Implemented"
		c.write("HTTP/1.1 " + public + errorHeaders + "Unsupported transfer encoding")
	case isNetReadError(err):
	case errors.As(err, &se):
		status := fmt.Sprintf("%d %s: %s", se.code, http.StatusText(se.code), se.text)
		c.write("HTTP/1.1 " + status + errorHeaders + status)
	default:
		const public = "400 Bad Request"
		c.write("HTTP/1.1 " + public + errorHeaders + public)
	}
}

func (c *conn) write(s string) {
	c.bw.WriteString(s)
	c.bw.Flush()
}

func isNetReadError(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}
