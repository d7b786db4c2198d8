package gateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway/backend"
	"github.com/keygate/keygate/internal/gateway/gwtest"
)

// interimSeen is what a client's trace saw of the interim answers.
type interimSeen struct {
	mu    sync.Mutex
	codes []int
	heads []http.Header
}

func (s *interimSeen) trace(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.codes = append(s.codes, code)
			s.heads = append(s.heads, http.Header(h).Clone())
			return nil
		},
	})
}

// send sends req through c with a trace, and returns the final answer,
// its decoded echo (if any) and the interim answers seen before it.
func send(t *testing.T, c *http.Client, req *http.Request) (*http.Response, gwtest.Echo, *interimSeen) {
	t.Helper()
	seen := &interimSeen{}
	resp, err := c.Do(req.WithContext(seen.trace(req.Context())))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e gwtest.Echo
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("decoding %q: %v", body, err)
		}
	}
	return resp, e, seen
}

func protoName(h2 bool) string {
	if h2 {
		return "HTTP/2.0"
	}
	return "HTTP/1.1"
}

// TestEarlyHints relays a backend's 103 Early Hints, with their Link
// fields and without hop-by-hop ones, before the final answer, to
// net/http's client over HTTP/1.1 and HTTP/2, and relays 102 and an
// unknown 1xx as well.
func TestEarlyHints(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	leaf := ca.Issue(t, gwtest.ECDSA, "www.example.test", "*.example.test")
	pool := gwtest.StartPool(t, "app", 1, nil)
	gw := startGateway(t, basicDoc(t, leaf, gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1"), pool, ""))

	for _, h2 := range []bool{false, true} {
		c := client(gw.Addr("site"), ca.Pool(), h2)
		req, _ := http.NewRequest("GET", "https://www.example.test/hints", nil)
		resp, e, seen := send(t, c, req)
		if resp.Proto != protoName(h2) || resp.StatusCode != http.StatusOK || e.Backend != "app1" {
			t.Fatalf("h2=%v: %s %d from %q", h2, resp.Proto, resp.StatusCode, e.Backend)
		}
		if !slices.Equal(seen.codes, []int{103, 103}) {
			t.Fatalf("h2=%v: interim answers %v, want two 103", h2, seen.codes)
		}
		if got := seen.heads[0].Values("Link"); !slices.Equal(got, []string{gwtest.HintA}) {
			t.Errorf("h2=%v: first 103 Link %q", h2, got)
		}
		if got := seen.heads[1].Values("Link"); !slices.Equal(got, []string{gwtest.HintA, gwtest.HintB}) {
			t.Errorf("h2=%v: second 103 Link %q", h2, got)
		}
		for _, h := range seen.heads {
			if h.Get("X-Hop") != "" || h.Get("Connection") != "" {
				t.Errorf("h2=%v: hop-by-hop fields relayed: %v", h2, h)
			}
		}
		if l := resp.Header.Values("Link"); len(l) > 0 {
			t.Errorf("h2=%v: final answer carries the hints' Link %q", h2, l)
		}

		for _, code := range []int{102, 150} {
			req, _ := http.NewRequest("GET", "https://www.example.test/interim?code="+strconv.Itoa(code), nil)
			resp, e, seen := send(t, c, req)
			if resp.StatusCode != http.StatusOK || e.Backend != "app1" || !slices.Equal(seen.codes, []int{code}) {
				t.Errorf("h2=%v: %d: final %d, interim %v", h2, code, resp.StatusCode, seen.codes)
			}
		}
	}
}

// TestEarlyHintsOnTheWire reads the bytes an HTTP/1.1 client gets over
// TLS: the two 103 answers, whole, before the final one.
func TestEarlyHintsOnTheWire(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	leaf := ca.Issue(t, gwtest.ECDSA, "www.example.test", "*.example.test")
	pool := gwtest.StartPool(t, "app", 1, nil)
	gw := startGateway(t, basicDoc(t, leaf, gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1"), pool, ""))

	conn := dialTLS(t, gw.Addr("site"), ca)
	io.WriteString(conn, "GET /hints HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n")
	raw, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	got := string(raw)
	want := "HTTP/1.1 103 Early Hints\r\nLink: " + gwtest.HintA + "\r\n\r\n" +
		"HTTP/1.1 103 Early Hints\r\nLink: " + gwtest.HintA + "\r\nLink: " + gwtest.HintB + "\r\n\r\n" +
		"HTTP/1.1 200 OK\r\n"
	if !strings.HasPrefix(got, want) {
		t.Errorf("the client got:\n%s\nwant it to start with:\n%s", got, want)
	}
	if !strings.Contains(got, `"backend":"app1"`) {
		t.Errorf("no final answer from the backend: %q", got)
	}

	// HTTP/1.0 knows no 1xx answers: the client gets the final one only.
	conn = dialTLS(t, gw.Addr("site"), ca)
	io.WriteString(conn, "GET /hints HTTP/1.0\r\nHost: www.example.test\r\n\r\n")
	raw, _ = io.ReadAll(conn)
	if got := string(raw); !strings.HasPrefix(got, "HTTP/1.0 200 OK\r\n") {
		t.Errorf("HTTP/1.0 client got %q", got)
	}
}

// dialTLS opens a TLS connection for HTTP/1.1 to addr, for
// www.example.test, with a deadline.
func dialTLS(t *testing.T, addr string, ca *gwtest.CA) *tls.Conn {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "www.example.test",
		NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn
}

// TestExpectContinueThroughGateway sends a body with Expect:
// 100-continue to a backend that sends a 100 of its own: the client gets
// one 100 (the gateway's) and sends its body, and the backend gets the
// body without the Expect field, over HTTP/1.1 and HTTP/2 with net/http's
// client and over a raw TLS connection.
func TestExpectContinueThroughGateway(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	leaf := ca.Issue(t, gwtest.ECDSA, "www.example.test", "*.example.test")
	pool := gwtest.StartPool(t, "app", 1, nil)
	gw := startGateway(t, basicDoc(t, leaf, gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1"), pool, ""))

	for _, h2 := range []bool{false, true} {
		c := client(gw.Addr("site"), ca.Pool(), h2)
		// Longer than the client's timeout: the body goes only after a
		// 100, so a gateway that sent none would fail the request.
		c.Transport.(*http.Transport).ExpectContinueTimeout = time.Minute
		req, _ := http.NewRequest("PUT", "https://www.example.test/interim?code=100", strings.NewReader("payload"))
		req.Header.Set("Expect", "100-continue")
		resp, e, seen := send(t, c, req)
		if resp.Proto != protoName(h2) || resp.StatusCode != http.StatusOK {
			t.Fatalf("h2=%v: %s %d", h2, resp.Proto, resp.StatusCode)
		}
		if !slices.Equal(seen.codes, []int{100}) {
			t.Errorf("h2=%v: interim answers %v, want one 100", h2, seen.codes)
		}
		if e.Body != "payload" || e.Expect != "" {
			t.Errorf("h2=%v: backend got body %q, Expect %q", h2, e.Body, e.Expect)
		}
	}

	conn := dialTLS(t, gw.Addr("site"), ca)
	io.WriteString(conn, "POST /interim?code=100 HTTP/1.1\r\nHost: www.example.test\r\nExpect: 100-continue\r\n"+
		"Content-Length: 7\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(conn)
	cont, err := http.ReadResponse(br, nil)
	if err != nil || cont.StatusCode != http.StatusContinue {
		t.Fatalf("before the body: %v %v, want 100 Continue", cont, err)
	}
	io.WriteString(conn, "payload")
	rest, _ := io.ReadAll(br)
	if got := string(rest); !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.Contains(got, `"body":"payload"`) {
		t.Errorf("after the body: %q", got)
	}
}

// TestInterimLimits answers 502 to a backend that sends 1xx answers
// without end, having relayed backend.MaxInterim of them, and 504 to one
// that sends them slowly past requestTimeout: they do not restart it.
func TestInterimLimits(t *testing.T) {
	pool := gwtest.StartPool(t, "app", 1, nil)
	gw := startGateway(t, poolDoc(gwtest.FreePort(t, "127.0.0.1"), pool, "requestTimeout: 1", "[]"))
	c := client(gw.Addr("web"), nil, false)

	req, _ := http.NewRequest("GET", "http://web.test/interim?code=103&n=1000", nil)
	resp, _, seen := send(t, c, req)
	if resp.StatusCode != http.StatusBadGateway || len(seen.codes) != backend.MaxInterim {
		t.Errorf("endless 1xx: %d after %d interim answers, want 502 after %d", resp.StatusCode, len(seen.codes), backend.MaxInterim)
	}

	req, _ = http.NewRequest("GET", "http://web.test/interim?code=102&n=8&gap=300ms", nil)
	resp, _, seen = send(t, c, req)
	if resp.StatusCode != http.StatusGatewayTimeout || len(seen.codes) == 0 || len(seen.codes) == 8 {
		t.Errorf("slow 1xx: %d after %d interim answers, want 504 after some but not all 8", resp.StatusCode, len(seen.codes))
	}

	req, _ = http.NewRequest("GET", "http://web.test/interim?code=102&n=2&gap=100ms", nil)
	if resp, e, seen := send(t, c, req); resp.StatusCode != http.StatusOK || e.Backend != "app1" || len(seen.codes) != 2 {
		t.Errorf("quick 1xx: %d after %v", resp.StatusCode, seen.codes)
	}
}
