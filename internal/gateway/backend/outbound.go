package backend

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"slices"
	"strings"
)

// Outbound is a request as the proxy sends it on: a head it has encoded
// itself, and the inbound request's body framed by ContentLength. It
// spares the proxy a clone of the inbound request and its header map for
// every request, which is what net/http's Request.Write would need.
type Outbound struct {
	// In is the inbound request: its context cancels the exchange, its
	// method says whether the answer has a body.
	In *http.Request

	// Head is the request line and the header fields, each ending in
	// CRLF, with the framing fields ContentLength calls for (a
	// Content-Length or Transfer-Encoding: chunked), but without the
	// empty line that ends the head.
	Head []byte

	// Body is nil for a request without one.
	Body io.Reader

	// ContentLength is how many bytes of Body to send; -1 sends Body
	// chunked, to its end, followed by Trailer.
	ContentLength int64
	Trailer       http.Header

	// Interim, when set, receives the server's interim (1xx) answers.
	Interim Interim
}

// Send sends out to m and returns the answer. The answer's body must be
// read to its end and closed for the connection to serve again.
func (b *Backend) Send(m *Member, out *Outbound) (*http.Response, error) {
	return b.pool.Send(m.Addr, out)
}

// write writes the request to w, without flushing.
func (o *Outbound) write(w *bufio.Writer) error {
	w.Write(o.Head)
	if o.ContentLength < 0 {
		o.writeTrailerHeader(w)
	}
	w.WriteString("\r\n")

	switch {
	case o.Body == nil:
		return nil
	case o.ContentLength >= 0:
		n, err := io.CopyN(w, o.Body, o.ContentLength)
		if err != nil {
			return fmt.Errorf("sending request body (%d of %d bytes): %w", n, o.ContentLength, err)
		}
		return nil
	}

	cw := httputil.NewChunkedWriter(w)
	if _, err := io.Copy(cw, o.Body); err != nil {
		return fmt.Errorf("sending request body: %w", err)
	}
	cw.Close()
	// The inbound body has filled in the trailer's values by its end.
	for _, k := range o.trailerKeys() {
		for _, v := range o.Trailer[k] {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(FieldValue(v))
			w.WriteString("\r\n")
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

// writeTrailerHeader announces the trailer fields.
func (o *Outbound) writeTrailerHeader(w *bufio.Writer) {
	if keys := o.trailerKeys(); len(keys) > 0 {
		w.WriteString("Trailer: ")
		w.WriteString(strings.Join(keys, ","))
		w.WriteString("\r\n")
	}
}

// trailerKeys are the trailer's field names in order, without those a
// trailer must not carry.
func (o *Outbound) trailerKeys() []string {
	if len(o.Trailer) == 0 {
		return nil
	}
	keys := make([]string, 0, len(o.Trailer))
	for k := range o.Trailer {
		switch http.CanonicalHeaderKey(k) {
		case "Transfer-Encoding", "Trailer", "Content-Length":
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// FieldValue is v as a header field value can be written: line breaks,
// which parsers refuse before a value gets this far, replaced so that no
// value can end the line it is written on, and the spaces around it
// trimmed, as net/http's client writes values.
func FieldValue(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(v)
	}
	return textproto.TrimString(v)
}
