package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway/backend"
	"github.com/keygate/keygate/internal/gateway/h1"
)

// rawBackend is a backend server on loopback that records each request's
// head as it came over the wire (request line, then header lines sorted)
// and its body, and answers with the raw response its path names.
type rawBackend struct {
	ln      net.Listener
	answers map[string]string

	mu   sync.Mutex
	seen []rawRequest
}

type rawRequest struct {
	line   string
	header []string
	body   string
}

func startRawBackend(t *testing.T, answers map[string]string) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln, answers: answers}
	go b.serve()
	t.Cleanup(func() { ln.Close() })
	return b
}

func (b *rawBackend) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

func (b *rawBackend) serve() {
	for {
		conn, err := b.ln.Accept()
		if err != nil {
			return
		}
		go b.serveConn(conn)
	}
}

func (b *rawBackend) serveConn(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		req, err := readRaw(br)
		if err != nil {
			return
		}
		b.mu.Lock()
		b.seen = append(b.seen, req)
		b.mu.Unlock()

		path := strings.Fields(req.line)[1]
		path, _, _ = strings.Cut(path, "?")
		answer, ok := b.answers[path]
		if !ok {
			answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		}
		if _, err := io.WriteString(conn, answer); err != nil {
			return
		}
		if path == "/upgrade" {
			// Echo what comes through the upgraded connection.
			io.Copy(conn, br)
			return
		}
		if strings.Contains(answer, "Connection: close") {
			return
		}
	}
}

// readRaw reads one request: its head lines as sent, and its body by
// the framing the head declares.
func readRaw(br *bufio.Reader) (rawRequest, error) {
	var req rawRequest
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return req, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if req.line == "" {
			req.line = line
		} else {
			req.header = append(req.header, line)
		}
	}
	slices.Sort(req.header)

	var body io.Reader = strings.NewReader("")
	chunked := false
	for _, h := range req.header {
		k, v, _ := strings.Cut(h, ": ")
		switch strings.ToLower(k) {
		case "content-length":
			n, _ := strconv.Atoi(v)
			body = io.LimitReader(br, int64(n))
		case "transfer-encoding":
			body, chunked = httputil.NewChunkedReader(br), true
		}
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return req, err
	}
	if chunked {
		// Trailers after the last chunk, up to the empty line.
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return req, err
			}
			if line = strings.TrimRight(line, "\r\n"); line == "" {
				break
			}
			req.header = append(req.header, "trailer "+line)
		}
	}
	req.body = string(b)
	return req, nil
}

func (b *rawBackend) last(t *testing.T) rawRequest {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) == 0 {
		t.Fatal("the backend saw no request")
	}
	return b.seen[len(b.seen)-1]
}

// frontFor serves p over plain HTTP on loopback, with the gateway's
// HTTP/1.x server, and returns its address.
func frontFor(t *testing.T, p *Proxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &h1.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: context.WithValue(context.Background(), http.ServerContextKey, &http.Server{})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func newProxy(t *testing.T, port int) *Proxy {
	t.Helper()
	b := backend.New("app", []string{"127.0.0.1"}, &backend.Settings{Name: "app", Port: port,
		RequestTimeout: 5 * time.Second}, backend.Options{})
	t.Cleanup(b.Transport.CloseIdleConnections)
	return New(b, nil)
}

// roundTrip sends raw to addr over a new connection and returns the
// response, read with its body.
func roundTrip(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	method := strings.Fields(raw)[0]
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// TestRequestOnTheWire checks, byte for byte, the head and body each kind
// of request reaches the backend with: hop-by-hop headers and headers
// named by Connection gone, forwarding headers replaced by the gateway's,
// framing as the client's request had it.
func TestRequestOnTheWire(t *testing.T) {
	be := startRawBackend(t, nil)
	front := frontFor(t, newProxy(t, be.port()))
	_, frontPort, _ := net.SplitHostPort(front)
	fwd := []string{
		"X-Forwarded-Host: site.test",
		"X-Forwarded-Port: " + frontPort,
		"X-Forwarded-Proto: http",
		"X-Original-Host: site.test",
	}

	cases := []struct {
		name   string
		raw    string
		line   string
		header []string
		body   string
	}{{
		name: "hop-by-hop and forwarding headers",
		raw: "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: site.test\r\nConnection: keep-alive, X-Drop\r\n" +
			"X-Drop: 1\r\nKeep-Alive: 300\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n" +
			"Te: trailers, deflate\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 198.51.100.7\r\n" +
			"X-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: gopher\r\nForwarded: for=evil\r\n" +
			"X-Original-Host: evil.test\r\nX-Forwarded-Port: 1\r\nAccept: */*\r\nx-multi: a\r\nX-Multi: b\r\n\r\n",
		line: "GET /a/b?x=1&y=%20 HTTP/1.1",
		header: []string{"Accept: */*", "Host: site.test", "Te: trailers",
			"X-Forwarded-For: 203.0.113.9, 198.51.100.7, 127.0.0.1", "X-Multi: a", "X-Multi: b"},
	}, {
		name:   "user agent kept, unparsable query dropped",
		raw:    "GET /q?a=1;b=2 HTTP/1.1\r\nHost: site.test\r\nUser-Agent: test/1\r\n\r\n",
		line:   "GET /q HTTP/1.1",
		header: []string{"Host: site.test", "User-Agent: test/1", "X-Forwarded-For: 127.0.0.1"},
	}, {
		name:   "absolute form",
		raw:    "GET http://site.test/abs?k=v HTTP/1.1\r\nHost: site.test\r\n\r\n",
		line:   "GET /abs?k=v HTTP/1.1",
		header: []string{"Host: site.test", "X-Forwarded-For: 127.0.0.1"},
	}, {
		name:   "body with a length",
		raw:    "POST /p HTTP/1.1\r\nHost: site.test\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
		line:   "POST /p HTTP/1.1",
		header: []string{"Content-Length: 5", "Content-Type: text/plain", "Host: site.test", "X-Forwarded-For: 127.0.0.1"},
		body:   "hello",
	}, {
		name: "chunked body with a trailer",
		raw: "PUT /c HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
			"3\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Sum: 7\r\n\r\n",
		line: "PUT /c HTTP/1.1",
		header: []string{"Host: site.test", "Trailer: X-Sum", "Transfer-Encoding: chunked",
			"X-Forwarded-For: 127.0.0.1", "trailer X-Sum: 7"},
		body: "abcdefg",
	}, {
		name:   "empty POST",
		raw:    "POST /e HTTP/1.1\r\nHost: site.test\r\nContent-Length: 0\r\n\r\n",
		line:   "POST /e HTTP/1.1",
		header: []string{"Content-Length: 0", "Host: site.test", "X-Forwarded-For: 127.0.0.1"},
	}, {
		name:   "DELETE without a body",
		raw:    "DELETE /d HTTP/1.1\r\nHost: site.test\r\n\r\n",
		line:   "DELETE /d HTTP/1.1",
		header: []string{"Host: site.test", "X-Forwarded-For: 127.0.0.1"},
	}, {
		name:   "HEAD",
		raw:    "HEAD /h HTTP/1.1\r\nHost: site.test\r\n\r\n",
		line:   "HEAD /h HTTP/1.1",
		header: []string{"Host: site.test", "X-Forwarded-For: 127.0.0.1"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := roundTrip(t, front, c.raw)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d %q", resp.StatusCode, body)
			}
			got := be.last(t)
			want := append(slices.Clone(c.header), fwd...)
			slices.Sort(want)
			if got.line != c.line {
				t.Errorf("request line %q, want %q", got.line, c.line)
			}
			if !slices.Equal(got.header, want) {
				t.Errorf("header:\n%s\nwant:\n%s", strings.Join(got.header, "\n"), strings.Join(want, "\n"))
			}
			if got.body != c.body {
				t.Errorf("body %q, want %q", got.body, c.body)
			}
		})
	}
}

// TestResponseFromTheWire checks what the client gets of the backend's
// answers: hop-by-hop headers dropped, repeated headers kept, trailers
// relayed, a close-delimited body streamed, HEAD without a body.
func TestResponseFromTheWire(t *testing.T) {
	be := startRawBackend(t, map[string]string{
		"/hop": "HTTP/1.1 201 Created\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n" +
			"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
		"/trailer": "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"3\r\nabc\r\n0\r\nX-Sum: 3\r\n\r\n",
		"/close": "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
		"/head":  "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n",
	})
	front := frontFor(t, newProxy(t, be.port()))

	resp, body := roundTrip(t, front, "GET /hop HTTP/1.1\r\nHost: site.test\r\n\r\n")
	if resp.StatusCode != http.StatusCreated || body != "hello" {
		t.Errorf("/hop: %d %q", resp.StatusCode, body)
	}
	for _, h := range []string{"X-Hop", "Keep-Alive"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("/hop: %s: %q reached the client", h, v)
		}
	}
	if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, []string{"a=1", "b=2"}) {
		t.Errorf("/hop: Set-Cookie %q", got)
	}
	if resp.ContentLength != 5 {
		t.Errorf("/hop: Content-Length %d", resp.ContentLength)
	}

	resp, body = roundTrip(t, front, "GET /trailer HTTP/1.1\r\nHost: site.test\r\n\r\n")
	if body != "abc" || resp.Trailer.Get("X-Sum") != "3" {
		t.Errorf("/trailer: %q, trailer %v", body, resp.Trailer)
	}

	_, body = roundTrip(t, front, "GET /close HTTP/1.1\r\nHost: site.test\r\n\r\n")
	if body != "until the end" {
		t.Errorf("/close: %q", body)
	}

	resp, body = roundTrip(t, front, "HEAD /head HTTP/1.1\r\nHost: site.test\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != "" || resp.ContentLength != 42 {
		t.Errorf("/head: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
	}
}

// TestUpgradeThroughProxy relays a 101 answer and then bytes both ways.
func TestUpgradeThroughProxy(t *testing.T) {
	be := startRawBackend(t, map[string]string{
		"/upgrade": "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
	})
	front := frontFor(t, newProxy(t, be.port()))
	conn, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(conn, "GET /upgrade HTTP/1.1\r\nHost: site.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	got := be.last(t)
	for _, h := range []string{"Connection: Upgrade", "Upgrade: echo"} {
		if !slices.Contains(got.header, h) {
			t.Errorf("backend header lacks %q: %q", h, got.header)
		}
	}
	fmt.Fprint(conn, "ping\n")
	if line, _ := br.ReadString('\n'); line != "ping\n" {
		t.Errorf("through the upgraded connection: %q", line)
	}
}

// TestBackendFailures answers 502 when the server refuses and 504 when
// it does not answer in time.
func TestBackendFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	front := frontFor(t, newProxy(t, port))
	if resp, _ := roundTrip(t, front, "GET / HTTP/1.1\r\nHost: site.test\r\n\r\n"); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("refused: %d, want 502", resp.StatusCode)
	}

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	b := backend.New("app", []string{"127.0.0.1"}, &backend.Settings{Name: "app",
		Port: silent.Addr().(*net.TCPAddr).Port, RequestTimeout: 200 * time.Millisecond}, backend.Options{})
	front = frontFor(t, New(b, nil))
	if resp, _ := roundTrip(t, front, "GET / HTTP/1.1\r\nHost: site.test\r\n\r\n"); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("silent: %d, want 504", resp.StatusCode)
	}
}

// TestHTTP2Inbound forwards HTTP/2 requests: a body of unknown length goes
// to the backend chunked, a body-less GET without framing.
func TestHTTP2Inbound(t *testing.T) {
	be := startRawBackend(t, nil)
	srv := httptest.NewUnstartedServer(newProxy(t, be.port()))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := srv.Client()

	body := io.MultiReader(strings.NewReader("streamed "), strings.NewReader("body"))
	resp, err := c.Post(srv.URL+"/up", "text/plain", body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST: %s %d", resp.Proto, resp.StatusCode)
	}
	got := be.last(t)
	if got.line != "POST /up HTTP/1.1" || got.body != "streamed body" ||
		!slices.Contains(got.header, "Transfer-Encoding: chunked") ||
		!slices.Contains(got.header, "X-Forwarded-Proto: https") {
		t.Errorf("POST reached the backend as %q %q %q", got.line, got.header, got.body)
	}

	resp, err = c.Get(srv.URL + "/down")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got = be.last(t)
	for _, h := range got.header {
		if strings.HasPrefix(h, "Content-Length") || strings.HasPrefix(h, "Transfer-Encoding") {
			t.Errorf("GET reached the backend with %q", h)
		}
	}
}
