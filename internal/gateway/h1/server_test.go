package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testHandler behaves by path, for comparing h1 with net/http's server.
func testHandler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/short":
		io.WriteString(w, "<html>short</html>")
	case "/typed":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"ok":true}`)
	case "/long":
		w.Write(bytes.Repeat([]byte("0123456789"), 1000))
	case "/length":
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	case "/empty":
	case "/nocontent":
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNoContent)
	case "/notmodified":
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Etag", `"x"`)
		w.WriteHeader(http.StatusNotModified)
	case "/echo":
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %q", r.Method, r.Proto, b)
	case "/ignorebody":
		io.WriteString(w, "ignored")
	case "/hints":
		w.Header().Set("Link", "</a.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.WriteHeader(http.StatusProcessing)
		io.WriteString(w, "final")
	case "/continue":
		// The body read sends 100 Continue; this one would be a second.
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusContinue)
		w.Write(b)
	case "/trailer":
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "abc")
		w.Header().Set("X-Sum", "3")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	case "/snapshot":
		w.Header().Set("X-Before", "1")
		w.WriteHeader(http.StatusOK)
		w.Header().Set("X-After", "1")
		io.WriteString(w, "snap")
	case "/close":
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	case "/error":
		http.Error(w, "nope", http.StatusForbidden)
	case "/headers":
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range r.Header {
				if !yield(k) {
					return
				}
			}
		}) {
			fmt.Fprintf(w, "%s=%s;", k, strings.Join(r.Header[k], ","))
		}
		fmt.Fprintf(w, "host=%s;remote=%v;tls=%v", r.Host, r.RemoteAddr != "", r.TLS != nil)
	default:
		http.NotFound(w, r)
	}
}

// rawExchange sends raw on a new connection to addr and returns all the
// server sent until it closed the connection or went quiet.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 64<<10)
	for {
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := conn.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return out.String() + "<open>"
			}
			return out.String() + "<closed>"
		}
	}
}

// normalize drops the Date field's value, which differs between runs.
func normalize(s string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\r\n") {
		if strings.HasPrefix(line, "Date: ") {
			line = "Date: *"
		}
		out = append(out, line)
	}
	return strings.Join(out, "\r\n")
}

// sortHeads sorts the header lines of each message head in s, which
// net/http writes sorted and h1 in map order.
func sortHeads(s string) string {
	var out strings.Builder
	for len(s) > 0 {
		start := strings.Index(s, "HTTP/1.")
		if start < 0 {
			out.WriteString(s)
			break
		}
		out.WriteString(s[:start])
		s = s[start:]
		end := strings.Index(s, "\r\n\r\n")
		if end < 0 {
			out.WriteString(s)
			break
		}
		lines := strings.Split(s[:end], "\r\n")
		slices.Sort(lines[1:])
		out.WriteString(strings.Join(lines, "\r\n") + "\r\n\r\n")
		s = s[end+4:]
	}
	return out.String()
}

func startH1(t *testing.T, h http.Handler, configure func(*Server)) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
	if configure != nil {
		configure(s)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return s, ln.Addr().String()
}

func startStd(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Config.ErrorLog = nil
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// TestSameAsNetHTTP sends the same requests, byte for byte, to h1 and to
// net/http's server with one handler, and expects the same answers (but
// for the order of header lines and the Date).
func TestSameAsNetHTTP(t *testing.T) {
	_, h1Addr := startH1(t, http.HandlerFunc(testHandler), nil)
	stdAddr := startStd(t, http.HandlerFunc(testHandler))
	host := "Host: site.test\r\n"

	cases := []struct{ name, raw string }{
		{"short sniffed", "GET /short HTTP/1.1\r\n" + host + "\r\n"},
		{"typed and repeated", "GET /typed HTTP/1.1\r\n" + host + "\r\n"},
		{"long chunked", "GET /long HTTP/1.1\r\n" + host + "\r\n"},
		{"long HTTP/1.0", "GET /long HTTP/1.0\r\n\r\n"},
		{"HTTP/1.0 keep-alive", "GET /length HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
		{"HTTP/1.0 keep-alive, unknown length", "GET /long HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
		{"HTTP/1.0 keep-alive, short", "GET /short HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
		{"declared length", "GET /length HTTP/1.1\r\n" + host + "\r\n"},
		{"empty", "GET /empty HTTP/1.1\r\n" + host + "\r\n"},
		{"HEAD", "HEAD /length HTTP/1.1\r\n" + host + "\r\n"},
		{"HEAD short", "HEAD /short HTTP/1.1\r\n" + host + "\r\n"},
		{"HEAD empty", "HEAD /empty HTTP/1.1\r\n" + host + "\r\n"},
		{"204", "GET /nocontent HTTP/1.1\r\n" + host + "\r\n"},
		{"304", "GET /notmodified HTTP/1.1\r\n" + host + "\r\n"},
		{"request body", "POST /echo HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello"},
		{"chunked request body", "POST /echo HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{"unread body discarded", "POST /ignorebody HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello" +
			"GET /short HTTP/1.1\r\n" + host + "\r\n"},
		{"pipelined", "GET /short HTTP/1.1\r\n" + host + "\r\nGET /length HTTP/1.1\r\n" + host + "\r\n"},
		{"POST then stray CRLF", "POST /echo HTTP/1.1\r\n" + host + "Content-Length: 1\r\n\r\nx\r\n" +
			"GET /short HTTP/1.1\r\n" + host + "\r\n"},
		{"trailer", "GET /trailer HTTP/1.1\r\n" + host + "\r\n"},
		{"snapshot at WriteHeader", "GET /snapshot HTTP/1.1\r\n" + host + "\r\n"},
		{"handler closes", "GET /close HTTP/1.1\r\n" + host + "\r\n"},
		{"client closes", "GET /short HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n"},
		{"http.Error", "GET /error HTTP/1.1\r\n" + host + "\r\n"},
		{"not found", "GET /missing HTTP/1.1\r\n" + host + "\r\n"},
		{"headers seen", "GET /headers HTTP/1.1\r\n" + host + "X-A: 1\r\nx-a: 2\r\nAccept: */*\r\n\r\n"},
		{"absolute form", "GET http://other.test/headers HTTP/1.1\r\n" + host + "\r\n"},
		{"expect continue", "POST /echo HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"},
		{"interim answers", "GET /hints HTTP/1.1\r\n" + host + "\r\n"},
		{"expect other", "POST /echo HTTP/1.1\r\n" + host + "Expect: teapot\r\nContent-Length: 2\r\n\r\nhi"},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\n" + host + "\r\n"},
		{"malformed", "GET / HTTP/1.1\r\nno colon here\r\n\r\n"},
		{"missing Host", "GET /short HTTP/1.1\r\n\r\n"},
		{"malformed Host", "GET /short HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{"two Hosts", "GET /short HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
		{"HTTP/3", "GET / HTTP/3.0\r\n" + host + "\r\n"},
		{"unsupported transfer encoding", "POST /echo HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\n"},
		{"length and chunked", "POST /echo HTTP/1.1\r\n" + host + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"two lengths", "POST /echo HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		{"header too large", "GET /short HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("x", 1<<20+8192) + "\r\n\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			want := sortHeads(normalize(rawExchange(t, stdAddr, c.raw)))
			got := sortHeads(normalize(rawExchange(t, h1Addr, c.raw)))
			if got != want {
				t.Errorf("h1 answered:\n%s\n\nnet/http answered:\n%s", show(got), show(want))
			}
		})
	}
}

func show(s string) string {
	if len(s) > 600 {
		s = s[:300] + "..." + s[len(s)-300:]
	}
	return strings.ReplaceAll(s, "\r\n", "\\r\\n\n")
}

// TestExpectContinueUnread answers a client that waits for 100 Continue
// and closes the connection at once, where net/http's server would wait
// for a body it never asked for.
func TestExpectContinueUnread(t *testing.T) {
	_, addr := startH1(t, http.HandlerFunc(testHandler), nil)
	got := rawExchange(t, addr, "POST /ignorebody HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
	if !strings.Contains(got, "Connection: close\r\n") || !strings.HasSuffix(got, "ignored<closed>") {
		t.Errorf("answer: %q", got)
	}
}

// TestFlushStreams sends what a handler flushes before it returns.
func TestFlushStreams(t *testing.T) {
	release := make(chan struct{})
	_, addr := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		http.NewResponseController(w).Flush()
		<-release
		io.WriteString(w, "second")
	}), nil)
	defer close(release)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("a flushed answer of unknown length is not chunked: %v", resp.TransferEncoding)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
		t.Errorf("before the handler returned: %q %v", buf, err)
	}
}

// TestHijack hands the connection over with what the client sent beyond
// the request.
func TestHijack(t *testing.T) {
	_, addr := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo " + line)
			brw.Flush()
		}
	}), nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if line, _ := br.ReadString('\n'); line != "echo early\n" {
		t.Errorf("bytes sent with the request: %q", line)
	}
	io.WriteString(conn, "later\n")
	if line, _ := br.ReadString('\n'); line != "echo later\n" {
		t.Errorf("bytes sent after: %q", line)
	}
}

// TestPanics closes the connection of a handler that panics, and serves
// the next connection.
func TestPanics(t *testing.T) {
	_, addr := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		panic("handler bug")
	}), nil)
	for _, path := range []string{"/abort", "/bug"} {
		got := rawExchange(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if got != "<closed>" {
			t.Errorf("%s: %q, want the connection closed", path, got)
		}
	}
}

// TestTimeouts closes a connection whose head does not arrive in time,
// and an idle kept-alive connection.
func TestTimeouts(t *testing.T) {
	_, addr := startH1(t, http.HandlerFunc(testHandler), func(s *Server) {
		s.ReadHeaderTimeout, s.IdleTimeout = 200*time.Millisecond, 300*time.Millisecond
	})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /short HTTP/1.1\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if n, err := conn.Read(make([]byte, 1)); err == nil {
		t.Errorf("a partial head got %d bytes of answer", n)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("partial head closed after %v", d)
	}

	conn2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	io.WriteString(conn2, "GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
	conn2.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn2)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	start = time.Now()
	if _, err := br.ReadByte(); err == nil {
		t.Error("an idle connection got bytes")
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("idle connection closed after %v, want about 300ms", d)
	}
}

// TestShutdown lets a request in flight finish, closes idle connections,
// refuses new ones, and reports a deadline it could not keep.
func TestShutdown(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	s, addr := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	}), nil)

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	idleBR := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(idleBR, nil); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}

	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a request in flight past the deadline: %v", err)
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idleBR.ReadByte(); err == nil {
		t.Error("the idle connection stayed open")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted after Shutdown")
	}

	close(release)
	busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("the request in flight: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "done" || !resp.Close {
		t.Errorf("the request in flight: %q, close %v", body, resp.Close)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown once the request finished: %v", err)
	}
}

// TestClientGoneCancels cancels a long request's context when its client
// closes the connection.
func TestClientGoneCancels(t *testing.T) {
	cancelled := make(chan error, 1)
	_, addr := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
			cancelled <- r.Context().Err()
		case <-time.After(5 * time.Second):
			cancelled <- nil
		}
	}), nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
	time.Sleep(2 * watchDelay)
	conn.Close()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Errorf("context after the client left: %v", err)
	}
}

// TestQuickRequestsNotWatched serves many requests on one connection
// with the watcher never left behind: the answers come in order.
func TestQuickRequestsNotWatched(t *testing.T) {
	var n atomic.Int32
	_, addr := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			time.Sleep(watchDelay + 20*time.Millisecond)
		}
		io.WriteString(w, r.URL.Path)
	}), nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	for i := range 30 {
		path := fmt.Sprintf("/%d", i)
		io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != path {
			t.Fatalf("request %d answered %q", i, body)
		}
	}
}

// TestTLSAndNextProto completes handshakes, hands h2 connections on, and
// tells a plain HTTP client that it reached an HTTPS port.
func TestTLSAndNextProto(t *testing.T) {
	cert := selfSigned(t)
	handed := make(chan string, 1)
	var done atomic.Int32
	_, addr := startH1(t, http.HandlerFunc(testHandler), func(s *Server) {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		s.NextProto = map[string]func(*tls.Conn){"h2": func(c *tls.Conn) {
			handed <- c.ConnectionState().NegotiatedProtocol
			c.Close()
		}}
		s.HandshakeDone = func(net.Conn, error) { done.Add(1) }
	})

	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get("https://" + addr + "/headers")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "tls=true") || resp.ProtoMajor != 1 {
		t.Errorf("over TLS: %s %q", resp.Proto, body)
	}

	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if p := <-handed; p != "h2" {
		t.Errorf("handed on %q", p)
	}

	if got := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.0 400 Bad Request") {
		t.Errorf("plain HTTP to the TLS port: %q", got)
	}
	if n := done.Load(); n != 3 {
		t.Errorf("HandshakeDone called %d times, want 3", n)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "h1.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"h1.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestWatcherKeepsNextRequest sends the next request while the watcher
// reads the connection: the byte it took starts the next request.
func TestWatcherKeepsNextRequest(t *testing.T) {
	_, addr := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * watchDelay)
		}
		io.WriteString(w, r.URL.Path)
	}), nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(2 * watchDelay)
	io.WriteString(conn, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	for _, want := range []string{"/slow", "/next"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != want {
			t.Errorf("answered %q, want %q", body, want)
		}
	}
}

// TestInterimAnswers sends no 1xx answer to an HTTP/1.0 client, which
// knows none (RFC 9110, 15.2), where net/http's server sends them, and
// one 100 Continue at most to a client that asked for it.
func TestInterimAnswers(t *testing.T) {
	_, addr := startH1(t, http.HandlerFunc(testHandler), nil)
	got := normalize(rawExchange(t, addr, "GET /hints HTTP/1.0\r\n\r\n"))
	if !strings.HasPrefix(got, "HTTP/1.0 200 OK\r\n") || strings.Contains(got, " 103 ") || strings.Contains(got, " 102 ") {
		t.Errorf("HTTP/1.0: %q", got)
	}
	got = rawExchange(t, addr, "POST /continue HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi")
	if n := strings.Count(got, "100 Continue"); n != 1 || !strings.Contains(got, "\r\n\r\nhi") {
		t.Errorf("%d × 100 Continue: %q", n, got)
	}
	got = rawExchange(t, addr, "POST /continue HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
	if n := strings.Count(got, "100 Continue"); n != 1 {
		t.Errorf("handler's own 100 without Expect: %d sent: %q", n, got)
	}
}
