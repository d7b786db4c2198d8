// Package proxy forwards a request to a backend server and the answer
// back: it picks the server, sets the headers a backend behind
// Application Gateway expects (X-Forwarded-For, -Proto, -Host, -Port,
// X-Original-Host), keeps affinity cookies, and turns backend failures
// into 502 or 504.
package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"

	"github.com/keygate/keygate/internal/gateway/backend"
)

// Proxy forwards requests to one backend. Safe for concurrent use.
type Proxy struct {
	b   *backend.Backend
	rp  *httputil.ReverseProxy
	log *slog.Logger
}

// Result says what became of a forwarded request, for the access log.
type Result struct {
	// Server is the backend server's address; empty when none was picked.
	Server string
}

// New returns a Proxy to b.
func New(b *backend.Backend, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{b: b, log: log}
	p.rp = &httputil.ReverseProxy{
		Rewrite:      p.rewrite,
		Transport:    b.Transport,
		BufferPool:   bufferPool{},
		ErrorHandler: p.fail,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return p
}

// ServeHTTP forwards r to a healthy server of the backend.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.Forward(w, r)
}

// Forward forwards r and reports which server took it.
func (p *Proxy) Forward(w http.ResponseWriter, r *http.Request) Result {
	// The server: the affinity cookie's while it lasts, else the next
	// healthy one.
	var cookie string
	if p.b.Settings.Affinity {
		if c, err := r.Cookie(p.b.Settings.CookieName); err == nil {
			cookie = c.Value
		}
	}
	m, setCookie := p.b.Pick(cookie)
	if m == nil {
		http.Error(w, "502 Bad Gateway: no healthy backend server", http.StatusBadGateway)
		return Result{}
	}
	if setCookie {
		c := p.b.AffinityCookie(m)
		http.SetCookie(w, c)
		if r.TLS != nil {
			// Browsers send a cookie on cross-site requests only with
			// SameSite=None, which needs Secure: a second cookie carries
			// that, as Application Gateway's ...CORS cookie does.
			cors := *c
			cors.Name += "CORS"
			cors.Secure, cors.SameSite = true, http.SameSiteNoneMode
			http.SetCookie(w, &cors)
		}
	}

	if fast(r) {
		p.forward(w, r, m)
		return Result{Server: m.Addr}
	}

	// Upgrades and the rare requests forward does not take go through
	// ReverseProxy, with a shallow copy whose URL points at the server;
	// Rewrite fills in the rest from it. The backend's Transport relays
	// the interim answers, not ReverseProxy's hook, which only
	// net/http's Transport calls.
	out := r.WithContext(backend.WithInterim(r.Context(), &relay{w: w, r: r}))
	u := *r.URL
	u.Scheme, u.Host = p.b.Scheme(), m.Addr
	out.URL = &u
	p.rp.ServeHTTP(w, out)
	return Result{Server: m.Addr}
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	in := pr.In
	pr.SetXForwarded()
	// SetXForwarded starts a new chain; a proxy in front of the gateway
	// has put its own, which the client's address extends.
	if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		pr.Out.Header.Set("X-Forwarded-For", strings.Join(prior, ", ")+", "+pr.Out.Header.Get("X-Forwarded-For"))
	}
	pr.Out.Header.Set("X-Original-Host", in.Host)
	// The gateway answers Expect: 100-continue itself (see relay).
	pr.Out.Header.Del("Expect")
	if local, ok := in.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(local.String()); err == nil {
			pr.Out.Header.Set("X-Forwarded-Port", port)
		}
	}
	if m := p.b.MemberByAddr(pr.Out.URL.Host); m != nil {
		pr.Out.Host = p.b.HostHeader(m, in.Host)
	}
}

// fail answers for a request the backend did not, for ReverseProxy, whose
// request's URL names the server.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, err error) {
	p.failAt(w, r, r.URL.Host, err)
}

// failAt answers for a request the server did not: 504 when it did not
// answer in time, 502 otherwise; nothing when the client left.
func (p *Proxy) failAt(w http.ResponseWriter, r *http.Request, server string, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return
	}
	status := http.StatusBadGateway
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	p.log.Warn("backend request failed", "pool", p.b.Pool, "settings", p.b.Settings.Name,
		"server", server, "status", status, "error", err)
	http.Error(w, http.StatusText(status), status)
}

// bufferPool lends ReverseProxy its copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
