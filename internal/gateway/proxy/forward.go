package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"

	"github.com/keygate/keygate/internal/gateway/backend"
)

// forward is the path of every request but upgrades and the rare kinds
// fast asks ReverseProxy to take: it encodes the outbound head straight
// from the inbound request, with the headers ReverseProxy with rewrite
// would send, and copies the answer back as ReverseProxy does.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, m *backend.Member) {
	// The outbound request, which relays the backend's interim answers
	// (one allocation for both).
	x := &exchange{relay: relay{w: w, r: r}}
	out := &x.out
	*out = backend.Outbound{In: r, ContentLength: outgoingLength(r), Interim: &x.relay}
	if out.ContentLength != 0 {
		out.Body = r.Body
	}
	if out.ContentLength < 0 {
		out.Trailer = r.Trailer
	}
	buf := heads.Get().(*[]byte)
	head, err := p.appendHead((*buf)[:0], r, m, out.ContentLength)
	if err != nil {
		heads.Put(buf)
		p.failAt(w, r, m.Addr, err)
		return
	}
	out.Head = head
	resp, err := p.b.Send(m, out)
	*buf = head
	heads.Put(buf)
	if err != nil {
		p.failAt(w, r, m.Addr, err)
		return
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body.Close()
		p.failAt(w, r, m.Addr, errors.New("backend switched protocols when none was requested"))
		return
	}

	// The answer's head: the backend's fields but its hop-by-hop ones,
	// added to those the gateway set (affinity cookies).
	removeHopByHop(resp.Header)
	dst := w.Header()
	for k, vv := range resp.Header {
		if prior, ok := dst[k]; ok {
			dst[k] = append(prior, vv...)
		} else {
			dst[k] = vv
		}
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		dst.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)

	// The body, flushed as it comes when it is a stream.
	if err := p.copyBody(w, resp); err != nil {
		resp.Body.Close()
		// All that can be done mid-answer is to cut the connection, as
		// ReverseProxy does.
		panic(http.ErrAbortHandler)
	}
	resp.Body.Close()

	// The trailer: announced fields as such, others by the prefix that
	// net/http sends as trailer fields.
	if len(resp.Trailer) > 0 {
		http.NewResponseController(w).Flush()
	}
	if len(resp.Trailer) == announced {
		for k, vv := range resp.Trailer {
			dst[k] = append(dst[k], vv...)
		}
		return
	}
	for k, vv := range resp.Trailer {
		for _, v := range vv {
			dst.Add(http.TrailerPrefix+k, v)
		}
	}
}

// exchange is what forward sends and what relays the answers that come
// before the final one.
type exchange struct {
	out   backend.Outbound
	relay relay
}

// fast reports whether forward takes r: everything but protocol
// upgrades, CONNECT, and a request of a kind that usually has no body
// sent with one of unknown length, which net/http's client probes for
// before choosing how to frame it.
func fast(r *http.Request) bool {
	if r.Method == http.MethodConnect || upgradeType(r.Header) != "" {
		return false
	}
	if outgoingLength(r) < 0 {
		switch r.Method {
		case "GET", "HEAD", "DELETE", "OPTIONS", "PROPFIND", "SEARCH":
			return false
		}
	}
	return true
}

// outgoingLength is the length of the body to send: 0 for none, -1 for
// a body of unknown length.
func outgoingLength(r *http.Request) int64 {
	if r.Body == nil || r.Body == http.NoBody {
		return 0
	}
	return r.ContentLength
}

// heads lends buffers for encoding outbound heads.
var heads = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// appendHead appends the outbound request line and header fields to b.
func (p *Proxy) appendHead(b []byte, r *http.Request, m *backend.Member, length int64) ([]byte, error) {
	uri, err := p.requestURI(r)
	if err != nil {
		return b, err
	}
	host, err := outboundHost(p.b.HostHeader(m, r.Host), m.Addr)
	if err != nil {
		return b, err
	}
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, uri...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	if ua := r.Header["User-Agent"]; len(ua) > 0 && ua[0] != "" {
		b = appendField(b, "User-Agent", ua[0])
	}

	// The client's fields but hop-by-hop ones, those its Connection field
	// names, and the forwarding fields the gateway sets itself.
	connection := r.Header["Connection"]
	for k, vv := range r.Header {
		if skipOutbound(k) || named(connection, k) {
			continue
		}
		for _, v := range vv {
			b = appendField(b, k, v)
		}
	}
	if httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers") {
		b = append(b, "Te: trailers\r\n"...)
	}

	// Forwarding fields, as ReverseProxy's SetXForwarded sets them, the
	// client's own X-Forwarded-For extended rather than replaced.
	clientIP, _, err := net.SplitHostPort(r.RemoteAddr)
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		b = append(b, "X-Forwarded-For: "...)
		for _, v := range prior {
			b = append(b, backend.FieldValue(v)...)
			b = append(b, ", "...)
		}
		if err == nil {
			b = append(b, clientIP...)
		}
		b = append(b, "\r\n"...)
	} else if err == nil {
		b = appendField(b, "X-Forwarded-For", clientIP)
	}
	b = appendField(b, "X-Forwarded-Host", r.Host)
	if r.TLS != nil {
		b = append(b, "X-Forwarded-Proto: https\r\n"...)
	} else {
		b = append(b, "X-Forwarded-Proto: http\r\n"...)
	}
	b = appendField(b, "X-Original-Host", r.Host)
	if port := localPort(r); port != "" {
		b = appendField(b, "X-Forwarded-Port", port)
	}

	// Framing.
	switch {
	case length > 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, length, 10)
		b = append(b, "\r\n"...)
	case length < 0:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH":
		// Many servers expect a length for these, as net/http's
		// client knows.
		b = append(b, "Content-Length: 0\r\n"...)
	}
	return b, nil
}

// requestURI is the outbound request target: the inbound one's path and
// query in origin form, its query stripped of parameters that do not
// parse, as ReverseProxy with rewrite sends it.
func (p *Proxy) requestURI(r *http.Request) (string, error) {
	u := *r.URL
	u.Scheme = p.b.Scheme()
	u.RawQuery = cleanQuery(u.RawQuery)
	uri := u.RequestURI()
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c < ' ' || c == 0x7f {
			return "", errors.New("request target holds a control character")
		}
	}
	return uri, nil
}

// outboundHost is the Host field to send: host in ASCII, without an IPv6
// zone, or addr when host is empty; empty when host is not a valid field
// value, as net/http's client sends it.
func outboundHost(host, addr string) (string, error) {
	if host == "" {
		host = addr
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c >= 0x80 || c == '%' {
			return slowHost(host)
		}
	}
	if !httpguts.ValidHostHeader(host) {
		return "", nil
	}
	return host, nil
}

func slowHost(host string) (string, error) {
	host, err := httpguts.PunycodeHostPort(host)
	if err != nil {
		return "", fmt.Errorf("encoding host name: %w", err)
	}
	if !httpguts.ValidHostHeader(host) {
		return "", nil
	}
	// RFC 6874: an intermediary removes the zone of an IPv6 literal.
	if open := strings.IndexByte(host, '['); open >= 0 {
		if pct := strings.IndexByte(host[open:], '%'); pct > 0 {
			if end := strings.IndexByte(host[open+pct:], ']'); end > 0 {
				host = host[:open+pct] + host[open+pct+end:]
			}
		}
	}
	return host, nil
}

// localPort is the port the request came in on.
func localPort(r *http.Request) string {
	switch a := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		return portString(a.Port)
	case net.Addr:
		if _, port, err := net.SplitHostPort(a.String()); err == nil {
			return port
		}
	}
	return ""
}

// portString is strconv.Itoa with the common ports already made.
func portString(port int) string {
	switch port {
	case 443:
		return "443"
	case 80:
		return "80"
	}
	return strconv.Itoa(port)
}

// skipOutbound reports whether the client's field k stays behind: a
// hop-by-hop field, one the request line or framing carries, a
// forwarding field the gateway sets, or Expect, which the gateway
// answers itself (see relay).
func skipOutbound(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Expect",
		"Host", "User-Agent", "Content-Length",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
		"X-Original-Host":
		return true
	}
	return false
}

// named reports whether the Connection field values name the field k
// (RFC 9110, 7.6.1). Field names compare without regard to case.
func named(connection []string, k string) bool {
	for _, v := range connection {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(f), k) {
				return true
			}
		}
	}
	return false
}

// hopByHop are the fields that concern one connection only (RFC 9110,
// 7.6.1, and older practice), as ReverseProxy removes them.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// removeHopByHop removes an answer's hop-by-hop fields and those its
// Connection field names.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			// keep-alive, the common one, goes with hopByHop below
			// without the cost of canonicalizing it.
			if f = textproto.TrimString(f); f != "" && !strings.EqualFold(f, "keep-alive") {
				h.Del(f)
			}
		}
	}
	for _, k := range hopByHop {
		delete(h, k)
	}
}

func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, backend.FieldValue(v)...)
	return append(b, "\r\n"...)
}

// cleanQuery keeps a query that parses, and otherwise re-encodes what of
// it does, as ReverseProxy does so that the backend cannot read a query
// differently from the gateway.
func cleanQuery(s string) string {
	reencode := func(s string) string {
		v, _ := url.ParseQuery(s)
		return v.Encode()
	}
	if strings.Count(s, "&") >= 10000 {
		return reencode(s)
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return reencode(s)
		case '%':
			if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
				return reencode(s)
			}
			i += 3
		default:
			i++
		}
	}
	return s
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// upgradeType is the protocol a request asks to switch to, if any.
func upgradeType(h http.Header) string {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

// copyBody copies the answer's body to w, flushing after every write
// when the body is a stream: server-sent events, or of unknown length.
func (p *Proxy) copyBody(w http.ResponseWriter, resp *http.Response) error {
	var flush func() error
	if resp.ContentLength == -1 || isEventStream(resp.Header.Get("Content-Type")) {
		flush = http.NewResponseController(w).Flush
	}
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if flush != nil {
				flush()
			}
		}
		switch {
		case rerr == io.EOF:
			return nil
		case rerr != nil:
			if !errors.Is(rerr, context.Canceled) {
				p.log.Debug("reading the backend's answer", "pool", p.b.Pool, "error", rerr)
			}
			return rerr
		}
	}
}

// isEventStream reports whether a Content-Type is text/event-stream,
// parsing it only when it might be.
func isEventStream(ct string) bool {
	if !strings.Contains(strings.ToLower(ct), "event-stream") {
		return false
	}
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "text/event-stream"
}
