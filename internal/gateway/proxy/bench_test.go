package proxy

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway/backend"
)

// discardWriter is a ResponseWriter that keeps nothing but the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// benchRequest is a request as h1 hands it to the proxy: a browser's
// usual fields, a client address, the port it came in on.
func benchRequest(b *testing.B) *http.Request {
	b.Helper()
	r, err := http.NewRequest("GET", "http://site.test/some/page?id=42", nil)
	if err != nil {
		b.Fatal(err)
	}
	r.RemoteAddr = "192.0.2.7:50123"
	r.Header.Set("User-Agent", "bench/1")
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Accept-Encoding", "gzip, br")
	r.Header.Set("Connection", "keep-alive")
	ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, &net.TCPAddr{Port: 443})
	return r.WithContext(ctx)
}

// BenchmarkAppendHead encodes an outbound request head.
func BenchmarkAppendHead(b *testing.B) {
	be := backend.New("app", []string{"127.0.0.1"}, &backend.Settings{Name: "app", Port: 8080}, backend.Options{})
	p := New(be, nil)
	r := benchRequest(b)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = p.appendHead(buf[:0], r, be.Members[0], 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForward forwards a request to a backend on loopback and reads
// its 13-byte answer: the gateway's work per proxied request but the
// client side, system calls included.
func BenchmarkForward(b *testing.B) {
	be := startBenchBackend(b)
	bk := backend.New("app", []string{"127.0.0.1"}, &backend.Settings{Name: "app", Port: be,
		RequestTimeout: 5 * time.Second}, backend.Options{})
	defer bk.Transport.CloseIdleConnections()
	p := New(bk, nil)
	r := benchRequest(b)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		p.Forward(w, r)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

// startBenchBackend serves a fixed answer to every request on kept-alive
// connections, as the benchmark's nginx backend does.
func startBenchBackend(b *testing.B) int {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	const answer = "HTTP/1.1 200 OK\r\nServer: bench\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n" +
		"Connection: keep-alive\r\n\r\nhello, bench\n"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					// One request per read: the client waits for each answer.
					if n > 0 {
						if _, err := c.Write([]byte(answer)); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}
