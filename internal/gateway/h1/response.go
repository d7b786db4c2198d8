package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// bufferBeforeHead is how much of a body the answer holds before it must
// send its head: an answer that ends within it gets a Content-Length,
// a longer one is chunked. It is net/http's size.
const bufferBeforeHead = 2048

// response is the http.ResponseWriter of one request. A connection reuses
// its one response from request to request.
type response struct {
	c   *conn
	req *http.Request

	header      http.Header
	status      int
	wroteHeader bool // a final (non-1xx) status is set
	sentHead    bool // the head is in the connection's buffer
	handlerDone bool

	// What the head will say, noted when the status is set, as
	// net/http's server snapshots the header map then.
	fields        []byte // the fields written as they are
	contentLength int64  // the handler's Content-Length; -1 for none
	te            string
	connection    []string
	contentType   []string
	hasCE         bool
	hasDate       bool
	trailers      []string // declared by the Trailer field
	prefixed      bool     // some field names carry http.TrailerPrefix

	buf      []byte // body held before the head is sent
	written  int64
	chunking bool
	close    bool // close the connection after this answer

	// expectContinue is set for a request that asked for 100 Continue
	// before its body; canWriteContinue while that may still be sent.
	expectContinue   bool
	canWriteContinue bool
	sentContinue     bool
	hasBody          bool
	body             *requestBody
	werr             error
}

// reset readies the response for req.
func (w *response) reset(req *http.Request) *response {
	*w = response{c: w.c, req: req, header: w.header, fields: w.fields[:0], buf: w.buf[:0],
		trailers: w.trailers[:0], contentLength: -1, body: w.body}
	if w.header == nil {
		w.header = make(http.Header)
	} else {
		clear(w.header)
	}
	w.close = req.Close && !wants10KeepAlive(req) || isH2Preface(req)
	if w.hasBody = req.Body != http.NoBody; w.hasBody {
		if w.body == nil {
			w.body = &requestBody{}
		}
		*w.body = requestBody{rc: req.Body, w: w}
		req.Body = w.body
	}
	return w
}

// wants10KeepAlive reports whether an HTTP/1.0 request asks to keep the
// connection.
func wants10KeepAlive(req *http.Request) bool {
	return req.ProtoMajor == 1 && req.ProtoMinor == 0 &&
		httpguts.HeaderValuesContainsToken(req.Header["Connection"], "keep-alive")
}

// Header is the header map of the answer.
func (w *response) Header() http.Header { return w.header }

// WriteHeader sets the status, or sends an informational (1xx) answer.
func (w *response) WriteHeader(code int) {
	if w.c.isHijacked() {
		w.c.srv.logf("WriteHeader on a hijacked connection")
		return
	}
	if w.wroteHeader {
		w.c.srv.logf("superfluous WriteHeader call", "status", code)
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 101 || code > 199 {
		// A final answer before the body was read: the client waiting
		// for 100 Continue will not get it.
		w.canWriteContinue = false
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}

	w.wroteHeader, w.status = true, code
	w.snapshot()
	if w.contentLength >= 0 {
		return
	}
	if cl := w.header.Get("Content-Length"); cl != "" {
		w.c.srv.logf("invalid Content-Length", "value", cl)
	}
}

// writeInterim sends a 1xx answer at once, but none to an HTTP/1.0
// client, which knows no 1xx answers (RFC 9110, 15.2: a server must not
// send it one), and no second 100 Continue, which would tell a client
// already sending its body nothing. (net/http's server sends a second
// one when a handler writes 100 after reading the body.)
func (w *response) writeInterim(code int) {
	if !w.req.ProtoAtLeast(1, 1) || code == http.StatusContinue && w.sentContinue {
		return
	}
	if code == http.StatusContinue {
		w.sentContinue = true
	}
	bw := w.c.bw
	writeStatusLine(bw, true, code)
	for k, vv := range w.header {
		if k == "Content-Length" || k == "Transfer-Encoding" {
			continue
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
	bw.WriteString("\r\n")
	bw.Flush()
}

// snapshot notes the header map as it is when the status is set: later
// changes reach only the trailer.
func (w *response) snapshot() {
	for k, vv := range w.header {
		switch {
		case strings.HasPrefix(k, http.TrailerPrefix):
			w.prefixed = true
			continue
		case k == "Content-Length":
			if v, err := strconv.ParseInt(vv[0], 10, 64); err == nil && v >= 0 {
				w.contentLength = v
			}
			continue
		case k == "Transfer-Encoding":
			w.te = vv[0]
			continue
		case k == "Connection":
			w.connection = vv
			continue
		case k == "Content-Type":
			w.contentType = vv
			continue
		case k == "Content-Encoding":
			w.hasCE = len(vv) > 0 && vv[0] != ""
		case k == "Date":
			w.hasDate = true
		case k == "Trailer":
			for _, v := range vv {
				w.declareTrailers(v)
			}
		}
		for _, v := range vv {
			w.fields = appendField(w.fields, k, v)
		}
	}
}

// declareTrailers notes the field names of a Trailer field's value.
func (w *response) declareTrailers(v string) {
	for k := range strings.SplitSeq(v, ",") {
		k = http.CanonicalHeaderKey(textproto.TrimString(k))
		if k != "" && httpguts.ValidTrailerHeader(k) {
			w.trailers = append(w.trailers, k)
		}
	}
}

// Write writes body bytes, holding the first bufferBeforeHead of them
// until the head is decided.
func (w *response) Write(p []byte) (int, error) {
	if w.c.isHijacked() {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}

	if !w.sentHead {
		if len(w.buf)+len(p) <= bufferBeforeHead {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		w.sendHead(p)
	}
	return len(p), w.writeBody(p)
}

// WriteString is Write without the conversion, for io.WriteString.
func (w *response) WriteString(s string) (int, error) {
	if !w.wroteHeader && !w.c.isHijacked() {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHead && w.wroteHeader && len(w.buf)+len(s) <= bufferBeforeHead &&
		bodyAllowed(w.status) && (w.contentLength == -1 || w.written+int64(len(s)) <= w.contentLength) {
		w.written += int64(len(s))
		w.buf = append(w.buf, s...)
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// writeBody writes body bytes after the head, framed.
func (w *response) writeBody(p []byte) error {
	if w.req.Method == "HEAD" || len(p) == 0 {
		return nil
	}
	bw := w.c.bw
	if w.chunking {
		writeHex(bw, len(p))
		bw.WriteString("\r\n")
	}
	_, err := bw.Write(p)
	if w.chunking {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil && w.werr == nil {
		w.werr = err
	}
	return err
}

// Flush sends the head and what body is buffered.
func (w *response) Flush() {
	w.FlushError()
}

// FlushError is Flush reporting the write's error, for
// http.ResponseController.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHead {
		w.sendHead(nil)
	}
	err := w.c.bw.Flush()
	if err != nil && w.werr == nil {
		w.werr = err
	}
	return err
}

// Hijack hands the connection over, as after an upgrade; the returned
// reader holds what the client sent beyond the request.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.isHijacked() {
		return nil, nil, http.ErrHijacked
	}
	if w.sentHead {
		c.bw.Flush()
	}
	c.watch.end()
	c.mu.Lock()
	c.hijacked = true
	c.mu.Unlock()
	c.srv.trackConn(c, false)
	c.nc.SetDeadline(time.Time{})
	return c.nc, bufio.NewReadWriter(c.br, c.bw), nil
}

// finish completes the answer after the handler returned.
func (w *response) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHead {
		w.sendHead(nil)
	}
	if w.chunking {
		bw := w.c.bw
		bw.WriteString("0\r\n")
		w.writeTrailers(bw)
		bw.WriteString("\r\n")
	}
	if err := w.c.bw.Flush(); err != nil && w.werr == nil {
		w.werr = err
	}
}

// writeTrailers writes the trailer fields: those declared, and those
// named with http.TrailerPrefix.
func (w *response) writeTrailers(bw *bufio.Writer) {
	for k, vv := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vv {
				writeField(bw, name, v)
			}
		}
	}
	for _, k := range w.trailers {
		for _, v := range w.header[k] {
			writeField(bw, k, v)
		}
	}
}

// reusable reports whether the connection can take another request.
func (w *response) reusable() bool {
	switch {
	case w.close, w.werr != nil, w.closedBodyEarly():
		return false
	case w.req.Method != "HEAD" && w.contentLength != -1 && bodyAllowed(w.status) &&
		w.contentLength != w.written:
		return false
	}
	return true
}

// closedBodyEarly reports whether the request's body was left unread.
func (w *response) closedBodyEarly() bool {
	return w.hasBody && !w.body.sawEOF
}

// expectationFailed refuses an Expect field other than 100-continue.
func (w *response) expectationFailed() {
	w.close = true
	w.header.Set("Connection", "close")
	w.WriteHeader(http.StatusExpectationFailed)
	w.finish()
}

// sendHead decides the framing and writes the head and the held body to
// the connection's buffer, following net/http's server: a Content-Length
// when the handler has finished within the buffer, chunked otherwise
// (HTTP/1.1), or the end of the connection (HTTP/1.0). more is the write
// that did not fit in the buffer, for sniffing the content type.
func (w *response) sendHead(more []byte) {
	w.sentHead = true
	req, p := w.req, w.buf
	isHEAD := req.Method == "HEAD"
	trailers := w.prefixed || len(w.trailers) > 0
	hasTE := w.te != ""

	// Extra fields this head adds.
	var contentLength, contentType, connection, transferEncoding string
	if w.handlerDone && !trailers && !hasTE && bodyAllowed(w.status) && w.contentLength == -1 &&
		(!isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		contentLength = strconv.Itoa(len(p))
	} else if w.contentLength >= 0 {
		contentLength = strconv.FormatInt(w.contentLength, 10)
	}
	hasCL := w.contentLength != -1
	connValue := ""
	if len(w.connection) > 0 {
		connValue = w.connection[0]
	}

	// Keep-alive: HTTP/1.0 only when asked and the length is known.
	keep10 := wants10KeepAlive(req)
	if keep10 && hasCL && connValue == "keep-alive" {
		w.close = false
	}
	if keep10 && (isHEAD || hasCL || !bodyAllowed(w.status)) {
		if len(w.connection) == 0 {
			connection = "keep-alive"
		}
	} else if !req.ProtoAtLeast(1, 1) || req.Close || isH2Preface(req) {
		w.close = true
	}
	if connValue == "close" || w.c.srv.closing.Load() {
		w.close = true
	}
	if w.expectContinue && !w.body.sawEOF {
		// The client may still wait for 100 Continue, or be sending a
		// body nobody reads.
		w.close = true
	}
	w.discardBody()

	// Content-Type, sniffed when the handler set none.
	keepType := true
	if bodyAllowed(w.status) {
		if !w.hasCE && len(w.contentType) == 0 && !hasTE && len(p)+len(more) > 0 {
			contentType = http.DetectContentType(sniffed(p, more))
		}
	} else {
		// 1xx, 204 and 304 carry no framing; 304 no type either.
		if w.status == http.StatusNotModified {
			keepType = false
		}
		contentLength, hasCL = "", false
		w.te, hasTE = "", false
	}

	// Framing.
	if hasCL && hasTE && w.te != "identity" {
		w.c.srv.logf("answer with both Transfer-Encoding and Content-Length", "te", w.te)
		contentLength, hasCL = "", false
	}
	switch {
	case isHEAD || !bodyAllowed(w.status):
	case hasCL:
	case req.ProtoAtLeast(1, 1):
		if hasTE && w.te == "identity" {
			w.close = true
		} else {
			w.chunking = true
			transferEncoding = "chunked"
		}
	default:
		w.close = true
	}
	if w.chunking {
		contentLength = ""
	}
	dropConnection := w.close && !hasToken(w.connection, "close") &&
		!(w.status == http.StatusSwitchingProtocols && len(w.header["Upgrade"]) > 0)
	if dropConnection {
		connection = ""
		if req.ProtoAtLeast(1, 1) {
			connection = "close"
		}
	}

	// The head.
	bw := w.c.bw
	writeStatusLine(bw, req.ProtoAtLeast(1, 1), w.status)
	bw.Write(w.fields)
	if keepType {
		for _, v := range w.contentType {
			writeField(bw, "Content-Type", v)
		}
	}
	if !dropConnection {
		for _, v := range w.connection {
			writeField(bw, "Connection", v)
		}
	}
	if contentType != "" {
		writeField(bw, "Content-Type", contentType)
	}
	if contentLength != "" {
		writeField(bw, "Content-Length", contentLength)
	}
	if !w.hasDate {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	if connection != "" {
		writeField(bw, "Connection", connection)
	}
	if transferEncoding != "" {
		writeField(bw, "Transfer-Encoding", transferEncoding)
	}
	bw.WriteString("\r\n")
	w.writeBody(p)
}

// sniffed is the start of the body that the content type is sniffed
// from: what net/http's server would have buffered when its buffer
// filled.
func sniffed(held, more []byte) []byte {
	const n = 512 // what http.DetectContentType reads
	if len(held) == 0 || len(held) >= n {
		return held[:min(len(held), n)]
	}
	return append(held[:len(held):len(held)], more[:min(len(more), n-len(held))]...)
}

// discardBody reads what the handler left of the request's body, up to
// 256 KiB, so that the connection can serve the next request; more than
// that closes it, as net/http does.
func (w *response) discardBody() {
	b := w.body
	if !w.hasBody || b.sawEOF || w.close || b.closed {
		if w.hasBody && b.closed && !b.sawEOF {
			w.close = true
		}
		return
	}
	if w.expectContinue {
		return
	}
	_, err := io.CopyN(io.Discard, b, 256<<10+1)
	switch {
	case err == nil:
		w.close = true
	case err == io.EOF:
	default:
		w.close = true
	}
}

func hasToken(vv []string, token string) bool {
	return httpguts.HeaderValuesContainsToken(vv, token)
}

func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199 || status == 204 || status == 304)
}

func writeStatusLine(bw *bufio.Writer, is11 bool, code int) {
	if is11 {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	// Digit by digit: a slice of a local array passed to the buffer
	// would escape, an allocation per answer.
	writeCode(bw, code)
	if text := http.StatusText(code); text != "" {
		bw.WriteByte(' ')
		bw.WriteString(text)
	} else {
		bw.WriteString(" status code ")
		writeCode(bw, code)
	}
	bw.WriteString("\r\n")
}

// writeCode writes a three-digit status code.
func writeCode(bw *bufio.Writer, code int) {
	bw.WriteByte(byte('0' + code/100))
	bw.WriteByte(byte('0' + code/10%10))
	bw.WriteByte(byte('0' + code%10))
}

// writeHex writes n in hexadecimal, for a chunk's size.
func writeHex(bw *bufio.Writer, n int) {
	const digits = "0123456789abcdef"
	shift := 0
	for n>>shift >= 16 {
		shift += 4
	}
	for ; shift >= 0; shift -= 4 {
		bw.WriteByte(digits[n>>shift&0xf])
	}
}

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(fieldValue(v))
	bw.WriteString("\r\n")
}

func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, fieldValue(v)...)
	return append(b, "\r\n"...)
}

// fieldValue is v with line breaks made spaces and the spaces around it
// trimmed, as net/http writes values.
func fieldValue(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(v)
	}
	return textproto.TrimString(v)
}

// httpDate is the Date field's value for now, made once a second.
func httpDate() string {
	now := time.Now()
	if d := date.Load(); d != nil && d.sec == now.Unix() {
		return d.text
	}
	d := &dateText{sec: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	date.Store(d)
	return d.text
}

type dateText struct {
	sec  int64
	text string
}

var date atomic.Pointer[dateText]

// requestBody is a request's body as the handler reads it: it notes its
// end, and sends 100 Continue on the first read when the client waits
// for it.
type requestBody struct {
	rc     io.ReadCloser
	w      *response
	sawEOF bool
	closed bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	w := b.w
	if w.canWriteContinue {
		w.canWriteContinue = false
		if !w.sentHead {
			w.sentContinue = true
			bw := w.c.bw
			bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			bw.Flush()
		}
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.sawEOF = true
		w.c.watch.bodyDone()
	}
	return n, err
}

func (b *requestBody) Close() error {
	b.closed = true
	return nil
}
