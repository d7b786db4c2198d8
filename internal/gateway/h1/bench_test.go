package h1

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
)

// BenchmarkKeepAlive sends requests one after another on one kept-alive
// connection to h1 and to net/http's server, with one handler answering
// 13 bytes; the client reads each answer by its Content-Length. Server
// and client share the machine, so ns/op is the round trip of both.
func BenchmarkKeepAlive(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello, bench\n")
	})
	servers := map[string]func(*testing.B, http.Handler) string{
		"h1": func(b *testing.B, h http.Handler) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			s := &Server{Handler: h}
			go s.Serve(ln)
			b.Cleanup(func() { s.Close() })
			return ln.Addr().String()
		},
		"net-http": func(b *testing.B, h http.Handler) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			s := &http.Server{Handler: h}
			go s.Serve(ln)
			b.Cleanup(func() { s.Close() })
			return ln.Addr().String()
		},
	}
	for _, name := range []string{"h1", "net-http"} {
		b.Run(name, func(b *testing.B) {
			addr := servers[name](b, h)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			req := []byte("GET / HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: bench\r\n\r\n")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := readAnswer(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// readAnswer reads one answer with a Content-Length.
func readAnswer(br *bufio.Reader) error {
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(": ")); ok && string(k) == "Content-Length" {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	_, err := br.Discard(length)
	return err
}
