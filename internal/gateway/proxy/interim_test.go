package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway/backend"
)

// interimAnswers is a backend's answer with every kind of 1xx before
// the final one: Early Hints with a hop-by-hop field, 100 Continue,
// 102 Processing and an unknown 1xx.
const interimAnswers = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload; as=style\r\n" +
	"Link: </b.js>; rel=preload; as=script\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\n" +
	"HTTP/1.1 100 Continue\r\n\r\n" +
	"HTTP/1.1 102 Processing\r\n\r\n" +
	"HTTP/1.1 199 Something New\r\nX-Info: 1\r\n\r\n" +
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

// answers reads from br the answers to one request: the interim ones
// and the final one, each as its status code and fields, and the final
// one's body.
func answers(t *testing.T, br *bufio.Reader, method string) (heads []*http.Response, body string) {
	t.Helper()
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("reading answers: %v (after %d)", err, len(heads))
		}
		heads = append(heads, resp)
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return heads, string(b)
		}
	}
}

func codes(heads []*http.Response) []int {
	var out []int
	for _, h := range heads {
		out = append(out, h.StatusCode)
	}
	return out
}

func dialFront(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn, bufio.NewReader(conn)
}

// TestInterimRelayed relays 103, 102 and an unknown 1xx to an HTTP/1.1
// client in order, without hop-by-hop fields, drops the backend's 100,
// and keeps the gateway's affinity cookie for the final answer.
func TestInterimRelayed(t *testing.T) {
	be := startRawBackend(t, map[string]string{"/hints": interimAnswers})
	b := backend.New("app", []string{"127.0.0.1"}, &backend.Settings{Name: "app", Port: be.port(),
		RequestTimeout: 5 * time.Second, Affinity: true, CookieName: "Affinity"}, backend.Options{})
	t.Cleanup(b.Transport.CloseIdleConnections)
	front := frontFor(t, New(b, nil))

	conn, br := dialFront(t, front)
	io.WriteString(conn, "GET /hints HTTP/1.1\r\nHost: site.test\r\n\r\n")
	heads, body := answers(t, br, "GET")
	if got, want := codes(heads), []int{103, 102, 199, 200}; !slices.Equal(got, want) {
		t.Fatalf("answers %v, want %v", got, want)
	}
	if body != "ok" {
		t.Errorf("body %q", body)
	}
	hints := heads[0].Header
	if got := hints.Values("Link"); !slices.Equal(got, []string{"</a.css>; rel=preload; as=style", "</b.js>; rel=preload; as=script"}) {
		t.Errorf("103 Link %q", got)
	}
	for _, k := range []string{"X-Hop", "Connection", "Keep-Alive", "Set-Cookie"} {
		if v := hints.Get(k); v != "" {
			t.Errorf("103 carries %s: %q", k, v)
		}
	}
	if heads[2].Header.Get("X-Info") != "1" || heads[1].Header.Get("X-Info") != "" {
		t.Errorf("1xx fields: 102 %v, 199 %v", heads[1].Header, heads[2].Header)
	}
	final := heads[3].Header
	if final.Get("Link") != "" || final.Get("X-Info") != "" {
		t.Errorf("interim fields leaked into the final answer: %v", final)
	}
	if c := final.Get("Set-Cookie"); !strings.HasPrefix(c, "Affinity=") {
		t.Errorf("final answer's Set-Cookie %q, want the affinity cookie", c)
	}

	// The connection serves the next request.
	io.WriteString(conn, "GET /plain HTTP/1.1\r\nHost: site.test\r\nCookie: Affinity=x\r\n\r\n")
	if heads, body := answers(t, br, "GET"); !slices.Equal(codes(heads), []int{200}) || body != "ok" {
		t.Errorf("next request: %v %q", codes(heads), body)
	}
}

// TestInterimNotToHTTP10 sends no 1xx answer to an HTTP/1.0 client.
func TestInterimNotToHTTP10(t *testing.T) {
	be := startRawBackend(t, map[string]string{"/hints": interimAnswers})
	front := frontFor(t, newProxy(t, be.port()))
	conn, br := dialFront(t, front)
	io.WriteString(conn, "GET /hints HTTP/1.0\r\nHost: site.test\r\n\r\n")
	heads, body := answers(t, br, "GET")
	if got := codes(heads); !slices.Equal(got, []int{200}) || body != "ok" {
		t.Errorf("HTTP/1.0: answers %v %q, want only 200", got, body)
	}
}

// TestInterimBeforeUpgrade relays a 103 that comes before 101 Switching
// Protocols, on the ReverseProxy path upgrades take.
func TestInterimBeforeUpgrade(t *testing.T) {
	be := startRawBackend(t, map[string]string{
		"/upgrade": "HTTP/1.1 103 Early Hints\r\nLink: </ws.js>; rel=preload\r\n\r\n" +
			"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
	})
	front := frontFor(t, newProxy(t, be.port()))
	conn, br := dialFront(t, front)
	io.WriteString(conn, "GET /upgrade HTTP/1.1\r\nHost: site.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	var heads []*http.Response
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, resp)
		if resp.StatusCode != http.StatusEarlyHints {
			break
		}
	}
	if got := codes(heads); !slices.Equal(got, []int{103, 101}) || heads[0].Header.Get("Link") != "</ws.js>; rel=preload" {
		t.Fatalf("answers %v, 103 Link %q", got, heads[0].Header.Get("Link"))
	}
	io.WriteString(conn, "ping\n")
	if line, _ := br.ReadString('\n'); line != "ping\n" {
		t.Errorf("through the upgraded connection: %q", line)
	}
}

// TestExpectContinue sends a body only after 100 Continue, as a client
// that asks for it does: the gateway sends one 100 (not the backend's
// too), and the backend gets the request without Expect and with its
// body, on both the forward and the ReverseProxy paths.
func TestExpectContinue(t *testing.T) {
	be := startRawBackend(t, map[string]string{"/hints": interimAnswers})
	front := frontFor(t, newProxy(t, be.port()))

	cases := []struct {
		name, head, body, want string
	}{
		{"with a length", "POST /hints HTTP/1.1\r\nHost: site.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
			"hello", "hello"},
		{"chunked GET (ReverseProxy)", "GET /hints HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
			"5\r\nhello\r\n0\r\n\r\n", "hello"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, br := dialFront(t, front)
			io.WriteString(conn, c.head)
			// Nothing of the body goes before the 100: a gateway that
			// waited for the body would not answer until the deadline.
			cont, err := http.ReadResponse(br, nil)
			if err != nil || cont.StatusCode != http.StatusContinue {
				t.Fatalf("before the body: %v %v, want 100 Continue", cont, err)
			}
			io.WriteString(conn, c.body)
			heads, body := answers(t, br, "POST")
			if got, want := codes(heads), []int{103, 102, 199, 200}; !slices.Equal(got, want) || body != "ok" {
				t.Fatalf("after the body: answers %v %q, want %v (one 100 only, the gateway's)", got, body, want)
			}
			got := be.last(t)
			if got.body != c.want {
				t.Errorf("backend got body %q, want %q", got.body, c.want)
			}
			for _, h := range got.header {
				if strings.HasPrefix(strings.ToLower(h), "expect") {
					t.Errorf("backend got %q", h)
				}
			}
		})
	}
}

// TestInterimCap answers 502 when the backend sends more 1xx answers
// than backend.MaxInterim, having relayed that many.
func TestInterimCap(t *testing.T) {
	be := startRawBackend(t, map[string]string{
		"/endless": strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n", 200) +
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	})
	front := frontFor(t, newProxy(t, be.port()))
	conn, br := dialFront(t, front)
	io.WriteString(conn, "GET /endless HTTP/1.1\r\nHost: site.test\r\n\r\n")
	heads, _ := answers(t, br, "GET")
	got := codes(heads)
	if len(got) != backend.MaxInterim+1 || got[len(got)-1] != http.StatusBadGateway {
		t.Errorf("answers %v, want %d × 103 then 502", got, backend.MaxInterim)
	}
}
