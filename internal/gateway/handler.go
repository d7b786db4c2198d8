package gateway

import (
	"crypto/tls"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/gateway/accesslog"
	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/metrics"
	"github.com/keygate/keygate/internal/gateway/proxy"
	"github.com/keygate/keygate/internal/gateway/route"
	"github.com/keygate/keygate/internal/gateway/tlspolicy"
)

// listener is an httpListener with its route.
type listener struct {
	g          *Gateway
	name       string
	https      bool
	hosts      []string
	requireSNI bool
	priority   int
	address    string
	slot       *certs.Slot
	tlsConfig  *tls.Config
	metrics    *metrics.Listener

	// target serves a Basic rule; paths a PathBasedRouting one.
	target *target
	paths  *route.PathMap[*target]
}

// target is where a rule or path rule sends a request: a backend or a
// redirect.
type target struct {
	name     string
	proxy    *proxy.Proxy
	redirect *redirect
}

// ServeHTTP routes a request to the listener that takes its Host header,
// and records it in the metrics and the access log.
func (s *socket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	entry := accesslog.Entry{Method: r.Method, Host: r.Host, Path: r.URL.Path, Protocol: r.Proto,
		UserAgent: r.UserAgent()}

	st := s.state.Load()
	e := st.table.ForHost(r.Host)
	if e == nil {
		http.Error(rec, "404 Not Found: no listener for this host name", http.StatusNotFound)
	} else {
		l := e.Value
		entry.Listener = l.name
		t := l.target
		if l.paths != nil {
			t = l.paths.Match(r.URL.Path)
		}
		entry.Rule = t.name
		if t.redirect != nil {
			t.redirect.serve(rec, r)
		} else {
			entry.Server = t.proxy.Forward(rec, r).Server
		}
	}

	// The record of it.
	d := time.Since(start)
	entry.Status, entry.Bytes, entry.Duration = rec.statusCode(), rec.bytes, d
	entry.ClientIP, _, _ = net.SplitHostPort(r.RemoteAddr)
	if r.TLS != nil {
		entry.TLSVersion = tlspolicy.VersionName(r.TLS.Version)
	}
	if e != nil {
		e.Value.metrics.Request(entry.Status, d)
	}
	st.accessLog.Write(r.Context(), &entry)
}

// recorder notes the status and size of an answer. Unwrap lets
// http.ResponseController reach the connection's flusher.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) statusCode() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// syncMap is a typed sync.Map.
type syncMap[K comparable, V any] struct{ m sync.Map }

func (m *syncMap[K, V]) Store(k K, v V) { m.m.Store(k, v) }

func (m *syncMap[K, V]) LoadAndDelete(k K) (V, bool) {
	v, ok := m.m.LoadAndDelete(k)
	if !ok {
		var zero V
		return zero, false
	}
	return v.(V), true
}

// newDebugLog routes net/http's own messages (TLS handshake errors from
// scanners, mostly) to debug level.
func newDebugLog(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelDebug)
}
