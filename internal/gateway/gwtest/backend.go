package gwtest

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Echo is what a test backend answers: who it is and what reached it.
type Echo struct {
	Backend        string `json:"backend"`
	Host           string `json:"host"`
	Path           string `json:"path"`
	Query          string `json:"query"`
	Proto          string `json:"proto"`
	XForwardedFor  string `json:"xForwardedFor"`
	XForwardedProt string `json:"xForwardedProto"`
	XForwardedHost string `json:"xForwardedHost"`
	XForwardedPort string `json:"xForwardedPort"`
	XOriginalHost  string `json:"xOriginalHost"`
	Expect         string `json:"expect"`
	Body           string `json:"body"`
}

// Backend is an HTTP or HTTPS server on a loopback address that answers
// every path with an Echo, except:
//
//	/health  200 "ok" while healthy, 503 after SetHealthy(false)
//	/slow    answers after the duration in ?d= (such as 500ms)
//	/hints   sends two 103 Early Hints first: the first with one Link
//	         field, the second with two, both with a hop-by-hop field
//	         (Connection: X-Hop, X-Hop: 1)
//	/interim sends ?n= (default 1) interim answers of status ?code=
//	         first, ?gap= (a duration) apart
//
// The Echo holds the request's body, read after any interim answers.
type Backend struct {
	Name string
	IP   string
	Port int

	healthy  atomic.Bool
	requests atomic.Int64
	inFlight atomic.Int64
	srv      *http.Server
}

// InFlight counts the /slow requests the backend is holding.
func (b *Backend) InFlight() int64 { return b.inFlight.Load() }

// Addr is the backend's host:port.
func (b *Backend) Addr() string { return net.JoinHostPort(b.IP, strconv.Itoa(b.Port)) }

// SetHealthy makes /health answer 200 or 503.
func (b *Backend) SetHealthy(ok bool) { b.healthy.Store(ok) }

// Requests counts the requests other than /health the backend has had.
func (b *Backend) Requests() int64 { return b.requests.Load() }

func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/health":
		if !b.healthy.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
		return
	case "/slow":
		b.inFlight.Add(1)
		defer b.inFlight.Add(-1)
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	case "/hints":
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "1")
		w.Header().Set("Link", HintA)
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Add("Link", HintB)
		w.WriteHeader(http.StatusEarlyHints)
		clear(w.Header())
	case "/interim":
		if !sendInterim(w, r) {
			return
		}
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	b.requests.Add(1)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(Echo{
		Backend: b.Name, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery, Proto: r.Proto,
		XForwardedFor: r.Header.Get("X-Forwarded-For"), XForwardedProt: r.Header.Get("X-Forwarded-Proto"),
		XForwardedHost: r.Header.Get("X-Forwarded-Host"), XForwardedPort: r.Header.Get("X-Forwarded-Port"),
		XOriginalHost: r.Header.Get("X-Original-Host"), Expect: r.Header.Get("Expect"), Body: string(body),
	})
}

// sendInterim sends /interim's interim answers; false when the client
// went away meanwhile.
func sendInterim(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	code, _ := strconv.Atoi(q.Get("code"))
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil {
		n = 1
	}
	gap, _ := time.ParseDuration(q.Get("gap"))
	for i := range n {
		if i > 0 && gap > 0 {
			select {
			case <-time.After(gap):
			case <-r.Context().Done():
			}
		}
		if r.Context().Err() != nil {
			return false
		}
		w.WriteHeader(code)
	}
	return true
}

// The Link fields of /hints's Early Hints.
const (
	HintA = "</style.css>; rel=preload; as=style"
	HintB = "</app.js>; rel=preload; as=script"
)

// StartPool starts n backends on 127.0.0.2, 127.0.0.3, ... all on one port
// (a pool's servers share the settings' port), serving TLS with cert when
// it is not nil. They stop when the test ends.
func StartPool(t testing.TB, prefix string, n int, cert *tls.Certificate) []*Backend {
	t.Helper()
	ips := make([]string, n)
	for i := range ips {
		ips[i] = "127.0.0." + strconv.Itoa(i+2)
	}
	return StartOn(t, prefix, ips, cert)
}

// StartOn starts a backend on each of ips, all on one free port.
func StartOn(t testing.TB, prefix string, ips []string, cert *tls.Certificate) []*Backend {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		lns, port, err := listenAll(ips)
		if err != nil {
			continue
		}
		var out []*Backend
		for i, ln := range lns {
			b := &Backend{Name: prefix + strconv.Itoa(i+1), IP: ips[i], Port: port}
			b.healthy.Store(true)
			b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
			if cert != nil {
				ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}})
			}
			go b.srv.Serve(ln)
			t.Cleanup(func() { b.srv.Close() })
			out = append(out, b)
		}
		return out
	}
	t.Fatalf("no port free on all of %v", ips)
	return nil
}

// listenAll listens on one port on every ip: the port the first gets.
func listenAll(ips []string) ([]net.Listener, int, error) {
	first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
	if err != nil {
		return nil, 0, err
	}
	port := first.Addr().(*net.TCPAddr).Port
	lns := []net.Listener{first}
	for _, ip := range ips[1:] {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, 0, errors.New("port taken")
		}
		lns = append(lns, ln)
	}
	return lns, port, nil
}

// FreePort returns a port that was free on ip a moment ago, for a
// configuration that needs a fixed port number.
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
