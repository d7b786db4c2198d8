package backend

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testServer is an HTTP server on loopback that counts the connections
// it accepts.
func testServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func plainPool(timeout time.Duration) *connPool {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return newConnPool(func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}, timeout)
}

func do(t *testing.T, p *connPool, method, url, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestConnPoolKeepsAlive(t *testing.T) {
	srv, conns := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/chunked" {
			w.Write([]byte("part1-"))
			w.(http.Flusher).Flush()
		}
		w.Write([]byte(r.Method + ":" + string(b)))
	})
	p := plainPool(time.Second)
	for i := range 20 {
		method, body, path := "GET", "", "/"
		if i%3 == 1 {
			method, body = "POST", "payload"
		}
		if i%5 == 4 {
			path = "/chunked"
		}
		resp, got := do(t, p, method, srv.URL+path, body)
		want := method + ":" + body
		if path == "/chunked" {
			want = "part1-" + want
		}
		if resp.StatusCode != 200 || got != want {
			t.Fatalf("request %d: %d %q, want %q", i, resp.StatusCode, got, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 20 sequential requests, want 1", n)
	}
}

// TestConnPoolRetriesClosedIdle sends a request on a kept-alive connection
// the server has closed meanwhile: it goes again on a new one.
func TestConnPoolRetriesClosedIdle(t *testing.T) {
	srv, conns := testServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	p := plainPool(time.Second)
	do(t, p, "GET", srv.URL, "")
	srv.CloseClientConnections()
	time.Sleep(10 * time.Millisecond) // let the close reach the client side
	if _, got := do(t, p, "GET", srv.URL, ""); got != "ok" {
		t.Errorf("after the server closed the idle connection: %q", got)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestConnPoolRetriesOnAFreshConnection has two idle connections the
// server closed: the request that finds the first dead goes again on a
// new connection, not on the second dead one.
func TestConnPoolRetriesOnAFreshConnection(t *testing.T) {
	release := make(chan struct{})
	srv, conns := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			<-release
		}
		w.Write([]byte("ok"))
	})
	p := plainPool(time.Second)
	// Two requests at once leave two idle connections.
	done := make(chan struct{})
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			req, _ := http.NewRequest("GET", srv.URL+"/wait", nil)
			if resp, err := p.RoundTrip(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	for conns.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	<-done
	<-done

	srv.CloseClientConnections()
	time.Sleep(10 * time.Millisecond) // let the close reach the client side
	if _, got := do(t, p, "GET", srv.URL, ""); got != "ok" {
		t.Errorf("with two closed idle connections: %q", got)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// TestConnPoolDoesNotReuseUnfinished closes a connection whose body was
// not read to the end, rather than reading the rest as the next answer.
func TestConnPoolDoesNotReuseUnfinished(t *testing.T) {
	srv, conns := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 100000)))
	})
	p := plainPool(time.Second)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 10))
	resp.Body.Close()
	if _, got := do(t, p, "GET", srv.URL, ""); len(got) != 100000 {
		t.Errorf("second answer has %d bytes", len(got))
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestConnPoolHeaderTimeoutAndCancel(t *testing.T) {
	srv, _ := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	p := plainPool(100 * time.Millisecond)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	_, err := p.RoundTrip(req)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("slow server: %v, want a timeout", err)
	}

	p = plainPool(0)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	if _, err := p.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v, want context.Canceled", err)
	}
}

// TestConnPoolUpgrade hands the connection over after 101.
func TestConnPoolUpgrade(t *testing.T) {
	srv, _ := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		conn.Write([]byte("echo " + line))
	})
	p := plainPool(time.Second)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := p.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	rw := resp.Body.(io.ReadWriteCloser)
	defer rw.Close()
	rw.Write([]byte("hello\n"))
	got, _ := bufio.NewReader(rw).ReadString('\n')
	if got != "echo hello\n" {
		t.Errorf("through the upgraded connection: %q", got)
	}
}

// interimLog records the interim answers of an exchange.
type interimLog struct {
	codes []int
	links []string
}

func (l *interimLog) Interim(code int, h http.Header) error {
	l.codes = append(l.codes, code)
	l.links = append(l.links, strings.Join(h.Values("Link"), ", "))
	return nil
}

// TestConnPoolInterim hands the 1xx answers before the final one to the
// request's Interim, in order and with their fields, through RoundTrip
// (the receiver in the context) and Send (in the Outbound), and reads
// past them when there is none.
func TestConnPoolInterim(t *testing.T) {
	srv, conns := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Add("Link", "</b.js>; rel=preload; as=script")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.WriteHeader(http.StatusProcessing)
		w.Write([]byte("final"))
	})
	p := plainPool(time.Second)
	wantCodes := []int{103, 103, 102}
	wantLinks := []string{"</a.css>; rel=preload; as=style",
		"</a.css>; rel=preload; as=style, </b.js>; rel=preload; as=script", ""}

	var viaCtx interimLog
	req, _ := http.NewRequestWithContext(WithInterim(context.Background(), &viaCtx), "GET", srv.URL, nil)
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "final" || resp.Header.Get("Link") != "" {
		t.Errorf("RoundTrip: %d %q, Link %q", resp.StatusCode, body, resp.Header.Get("Link"))
	}
	if !slices.Equal(viaCtx.codes, wantCodes) || !slices.Equal(viaCtx.links, wantLinks) {
		t.Errorf("RoundTrip: interim %v %q, want %v %q", viaCtx.codes, viaCtx.links, wantCodes, wantLinks)
	}

	var viaOut interimLog
	in, _ := http.NewRequest("GET", srv.URL, nil)
	out := &Outbound{In: in, Head: []byte("GET / HTTP/1.1\r\nHost: test\r\n"), Interim: &viaOut}
	resp, err = p.Send(srv.Listener.Addr().String(), out)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "final" {
		t.Errorf("Send: %d %q", resp.StatusCode, body)
	}
	if !slices.Equal(viaOut.codes, wantCodes) || !slices.Equal(viaOut.links, wantLinks) {
		t.Errorf("Send: interim %v %q, want %v %q", viaOut.codes, viaOut.links, wantCodes, wantLinks)
	}

	if resp, got := do(t, p, "GET", srv.URL, ""); resp.StatusCode != 200 || got != "final" {
		t.Errorf("without a receiver: %d %q", resp.StatusCode, got)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1: interim answers must leave the connection reusable", n)
	}
}

// TestConnPoolAnswerHeadLimit takes an answer whose head is large but
// within the limit, and refuses one past it, leaving the pool usable.
func TestConnPoolAnswerHeadLimit(t *testing.T) {
	srv, _ := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("kib"))
		w.Header().Set("X-Big", strings.Repeat("a", n<<10))
		w.Write([]byte(strings.Repeat("b", 64<<10)))
	})
	p := plainPool(5 * time.Second)
	resp, body := do(t, p, "GET", srv.URL+"?kib=40", "")
	if len(resp.Header.Get("X-Big")) != 40<<10 || len(body) != 64<<10 {
		t.Errorf("a 40 KiB head: %d header bytes, %d body bytes", len(resp.Header.Get("X-Big")), len(body))
	}
	req, _ := http.NewRequest("GET", srv.URL+"?kib=100", nil)
	if resp, err := p.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Errorf("a 100 KiB head: %d, want an error", resp.StatusCode)
	} else if !strings.Contains(err.Error(), "larger than 64 KiB") {
		t.Errorf("a 100 KiB head: %v, want the limit named", err)
	}
	if _, body := do(t, p, "GET", srv.URL+"?kib=1", ""); len(body) != 64<<10 {
		t.Errorf("after the refusal: %d body bytes", len(body))
	}
}

// TestConnPoolInterimCap ends an exchange whose server sends more than
// maxInterim 1xx answers, having passed on maxInterim of them.
func TestConnPoolInterimCap(t *testing.T) {
	srv, _ := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		for range 10000 {
			if r.Context().Err() != nil {
				return
			}
			w.WriteHeader(http.StatusEarlyHints)
		}
		w.Write([]byte("final"))
	})
	p := plainPool(5 * time.Second)
	var got interimLog
	req, _ := http.NewRequestWithContext(WithInterim(context.Background(), &got), "GET", srv.URL, nil)
	resp, err := p.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("endless 1xx: %d, want an error", resp.StatusCode)
	}
	if !strings.Contains(err.Error(), "more than 16 interim (1xx) answers") {
		t.Errorf("endless 1xx: %v", err)
	}
	if len(got.codes) != MaxInterim {
		t.Errorf("passed on %d interim answers, want %d", len(got.codes), MaxInterim)
	}
}

// TestConnPoolInterimKeepsHeaderTimeout times out a server that sends
// 1xx answers slowly but no final one within the header timeout: the
// interim answers do not restart it.
func TestConnPoolInterimKeepsHeaderTimeout(t *testing.T) {
	srv, _ := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		for range 10 {
			w.WriteHeader(http.StatusProcessing)
			select {
			case <-time.After(100 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		w.Write([]byte("final"))
	})
	p := plainPool(300 * time.Millisecond)
	var got interimLog
	req, _ := http.NewRequestWithContext(WithInterim(context.Background(), &got), "GET", srv.URL, nil)
	resp, err := p.RoundTrip(req)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("slow 1xx: %v, want a timeout", err)
	}
	if len(got.codes) == 0 || len(got.codes) >= 10 {
		t.Errorf("passed on %d interim answers before the timeout, want some but not all 10", len(got.codes))
	}
}

// TestConnPoolInterimError ends the exchange when the receiver fails.
func TestConnPoolInterimError(t *testing.T) {
	srv, _ := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		w.Write([]byte("final"))
	})
	p := plainPool(time.Second)
	fail := InterimFunc(func(int, http.Header) error { return errors.New("client gone") })
	req, _ := http.NewRequestWithContext(WithInterim(context.Background(), fail), "GET", srv.URL, nil)
	resp, err := p.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("failing receiver: no error")
	}
	if !strings.Contains(err.Error(), "passing on interim answer 103") || !strings.Contains(err.Error(), "client gone") {
		t.Errorf("failing receiver: %v", err)
	}
}
