package proxy

import (
	"maps"
	"net/http"

	"github.com/keygate/keygate/internal/gateway/backend"
)

// relay passes a backend's interim (1xx) answers to the client of one
// request, as its backend.Interim.
//
// What it passes on, and why:
//
//   - 103 Early Hints, 102 Processing and 1xx codes it does not know go
//     to the client as they come, without their hop-by-hop fields: RFC
//     9110 (15.2) has a proxy forward 1xx answers it did not ask for
//     itself, and has clients parse and pass over those they do not
//     know, which net/http's client, browsers and curl do.
//   - 100 Continue never does. The gateway answers a client's Expect:
//     100-continue itself, as nginx does: its HTTP/1.x server (h1) and
//     net/http's HTTP/2 server send 100 Continue when the proxy first
//     reads the body to forward it, that is once a server has been
//     picked and a connection to it is ready, and the Expect field is
//     not forwarded (see skipOutbound), since the backend is sent the
//     body straight after the head and nobody waits for its 100. A 100
//     from the backend would then answer nothing the client asked, or
//     be a second one after the gateway's.
//   - None reach an HTTP/1.0 client: HTTP/1.0 has no 1xx answers, and
//     RFC 9110 (15.2) forbids sending it one.
//
// 101 Switching Protocols is a final answer for the backend package and
// ReverseProxy relays it; MaxInterim bounds how many answers come here.
type relay struct {
	w http.ResponseWriter
	r *http.Request
}

var _ backend.Interim = (*relay)(nil)

// Interim relays one interim answer, whose fields it may change.
func (rl *relay) Interim(code int, h http.Header) error {
	if code == http.StatusContinue || !rl.r.ProtoAtLeast(1, 1) {
		return nil
	}
	removeHopByHop(h)
	delete(h, "Content-Length")

	// A ResponseWriter sends its header map as it is with a 1xx answer,
	// and keeps it for the final answer: it holds the interim answer's
	// fields alone while that is sent, then the gateway's own again
	// (affinity cookies), which belong to the final answer only.
	dst := rl.w.Header()
	own := maps.Clone(dst)
	clear(dst)
	maps.Copy(dst, h)
	rl.w.WriteHeader(code)
	clear(dst)
	maps.Copy(dst, own)
	return nil
}
