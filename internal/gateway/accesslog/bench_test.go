package accesslog

import (
	"context"
	"io"
	"testing"
	"time"
)

func BenchmarkWrite(b *testing.B) {
	l := New(io.Discard)
	defer l.Close()
	e := &Entry{Listener: "site", ClientIP: "192.0.2.7", Method: "GET", Host: "www.example.test",
		Path: "/some/page", Protocol: "HTTP/1.1", TLSVersion: "TLSv1.3", Status: 200, Bytes: 1234,
		Duration: 1234567 * time.Nanosecond, Rule: "site", Server: "10.0.0.4:8080", UserAgent: "Mozilla/5.0 (bench)"}
	b.ReportAllocs()
	for b.Loop() {
		l.Write(context.Background(), e)
	}
}
