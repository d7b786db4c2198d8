package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/keygate/keygate/internal/gateway/backend"
	"github.com/keygate/keygate/internal/gateway/certs"
	"github.com/keygate/keygate/internal/gateway/rotate"
)

// adminRoutes serves the admin listener: Prometheus metrics, liveness,
// readiness, a status document, and a refresh of vault certificates.
func (g *Gateway) adminRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", g.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", g.serveReady)
	mux.HandleFunc("GET /status", g.serveStatus)
	mux.HandleFunc("POST /refresh", g.serveRefresh)
	mux.HandleFunc("POST /reload", g.serveReload)

	// Profiles, for finding what limits a busy gateway. The admin
	// listener is on loopback unless configured otherwise.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// ListenerStatus is a listener's state on the status page.
type ListenerStatus struct {
	Name        string `json:"name"`
	Address     string `json:"address"`
	Protocol    string `json:"protocol"`
	Ready       bool   `json:"ready"`
	Certificate string `json:"certificate,omitempty"`

	// CertificateStatus is the state of the listener's certificate: the
	// version in use, its expiry, the last refresh and attempt, and the
	// condition.
	CertificateStatus *certs.Status `json:"certificateStatus,omitempty"`

	// Waiting says why a listener that is not ready waits.
	Waiting string `json:"waiting,omitempty"`
}

// Status is the gateway's state: listeners, certificates, the vaults'
// event streams, backends.
type Status struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`

	// Generation counts the configurations applied: 1 for the one the
	// gateway started with, one more for each successful reload.
	// LoadedAt is when the one in force was loaded.
	Generation uint64    `json:"generation"`
	LoadedAt   time.Time `json:"loadedAt"`

	Listeners    []ListenerStatus    `json:"listeners"`
	Certificates []certs.Status      `json:"certificates"`
	Vaults       []rotate.VaultState `json:"vaults,omitempty"`
	Backends     []backend.Status    `json:"backends"`
}

// Status reports the gateway's state.
func (g *Gateway) Status() Status {
	gen := g.current()
	st := Status{Name: gen.cfg.Name, Ready: true, Generation: gen.number, LoadedAt: gen.loaded}
	for _, l := range gen.listeners {
		ls := ListenerStatus{Name: l.name, Address: l.address, Protocol: "Http", Ready: l.ready()}
		if l.https {
			cs := gen.certificateStatus(collCerts, l.slot)
			ls.Protocol, ls.Certificate, ls.CertificateStatus = "Https", l.slot.Name(), &cs
			ls.Waiting = waiting(cs)
		}
		st.Ready = st.Ready && ls.Ready
		st.Listeners = append(st.Listeners, ls)
	}
	for _, name := range sortedNames(gen.certSlots) {
		st.Certificates = append(st.Certificates, gen.certificateStatus(collCerts, gen.certSlots[name]))
	}
	for _, name := range sortedNames(gen.rootSlots) {
		st.Certificates = append(st.Certificates, gen.certificateStatus(collRoots, gen.rootSlots[name]))
	}
	if g.rotator != nil {
		st.Vaults = g.rotator.Vaults()
	}
	for _, rb := range gen.ordered {
		st.Backends = append(st.Backends, rb.b.Status()...)
	}
	return st
}

// waiting says why a listener with the certificate cs does not serve, or
// "" when it does.
func waiting(cs certs.Status) string {
	var why string
	switch {
	case cs.Serving:
		return ""
	case cs.Ready:
		why = "certificate " + cs.Name + " is not served (onKeyVaultError: DisableListener)"
	default:
		why = "certificate " + cs.Name + " has not loaded"
	}
	if cs.LastError != "" {
		why += ": " + string(cs.Condition) + ": " + cs.LastError
	}
	return why
}

func (g *Gateway) serveStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, g.Status())
}

// serveReady answers 200 when every listener serves, else 503 naming the
// listeners that wait and why.
func (g *Gateway) serveReady(w http.ResponseWriter, _ *http.Request) {
	st := g.Status()
	type waiting struct {
		Listener string `json:"listener"`
		Reason   string `json:"reason"`
	}
	body := struct {
		Ready   bool      `json:"ready"`
		Waiting []waiting `json:"waiting,omitempty"`
	}{Ready: st.Ready}
	for _, l := range st.Listeners {
		if !l.Ready {
			body.Waiting = append(body.Waiting, waiting{l.Name, l.Waiting})
		}
	}
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, body)
}

// RefreshTimeout bounds a refresh asked for on the admin listener.
const RefreshTimeout = 2 * time.Minute

// serveRefresh reads vault certificates now: the one named by the
// certificate parameter, or every one. It answers when the reads are done,
// with the outcome of each.
func (g *Gateway) serveRefresh(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("certificate")
	ctx, cancel := context.WithTimeout(r.Context(), RefreshTimeout)
	defer cancel()
	g.log.Info("refresh asked for on the admin listener", "certificate", name, "client", r.RemoteAddr)
	results, err := g.rotator.Refresh(ctx, name)
	switch {
	case errors.Is(err, rotate.ErrUnknown):
		writeJSON(w, http.StatusNotFound, map[string]string{
			"error": fmt.Sprintf("certificate: no sslCertificate or trustedRootCertificate named %q is read from a vault", name)})
	case err != nil:
		writeJSON(w, http.StatusGatewayTimeout, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusOK, RefreshResponse{Results: results})
	}
}

// RefreshResult is the outcome of one certificate's read.
type RefreshResult = rotate.Result

// RefreshResponse is the answer of POST /refresh.
type RefreshResponse struct {
	Results []RefreshResult `json:"results"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
