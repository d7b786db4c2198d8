package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
)

// serve serves the socket until it shuts down: h1 accepts connections,
// completes TLS handshakes and serves HTTP/1.x itself; connections that
// negotiated h2 go to net/http's server, which serves HTTP/2.
func (s *socket) serve() error {
	if s.h2 == nil {
		return s.h1.Serve(s.ln)
	}
	s.h2.addr = s.ln.Addr()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.srv.Serve(s.h2); err != nil && !errors.Is(err, http.ErrServerClosed) &&
			!errors.Is(err, net.ErrClosed) {
			s.g.log.Error("HTTP/2 server stopped", "address", s.addr, "error", err)
		}
	})
	defer wg.Wait()
	defer s.h2.Close()
	return s.h1.Serve(s.ln)
}

// shutdown drains both servers within ctx.
func (s *socket) shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	var h2err error
	wg.Go(func() { h2err = s.srv.Shutdown(ctx) })
	err := s.h1.Shutdown(ctx)
	wg.Wait()
	return errors.Join(err, h2err)
}

// close closes both servers' connections at once.
func (s *socket) close() {
	s.h1.Close()
	s.srv.Close()
}

// handshakeDone counts a failed handshake against the listener its
// ClientHello chose, and forgets the connection.
func (s *socket) handshakeDone(raw net.Conn, err error) {
	name, _ := s.handshakeListener.LoadAndDelete(raw)
	if err == nil {
		return
	}
	if name == "" {
		name = "none"
	}
	s.g.metrics.Handshake(name, "none", "failure")
}

// connQueue is the listener net/http's server serves HTTP/2 from: the
// connections h1 hands it after their handshake.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to the server, or closes it once the queue is closed.
func (q *connQueue) push(c *tls.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
