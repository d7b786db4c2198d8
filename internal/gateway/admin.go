package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sort"

	"github.com/keygate/keygate/internal/gateway/backend"
	"github.com/keygate/keygate/internal/gateway/certs"
)

// adminRoutes serves the admin listener: Prometheus metrics, liveness,
// readiness and a status document.
func (g *Gateway) adminRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", g.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", g.serveReady)
	mux.HandleFunc("GET /status", g.serveStatus)

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

	// Waiting says why a listener that is not ready waits.
	Waiting string `json:"waiting,omitempty"`
}

// Status is the gateway's state: listeners, certificates, backends.
type Status struct {
	Name         string           `json:"name"`
	Ready        bool             `json:"ready"`
	Listeners    []ListenerStatus `json:"listeners"`
	Certificates []certs.Status   `json:"certificates"`
	Backends     []backend.Status `json:"backends"`
}

// Status reports the gateway's state.
func (g *Gateway) Status() Status {
	st := Status{Name: g.cfg.Name, Ready: true}
	for _, l := range g.listeners {
		ls := ListenerStatus{Name: l.name, Address: l.address, Protocol: "Http", Ready: l.ready()}
		if l.https {
			ls.Protocol, ls.Certificate = "Https", l.slot.Name()
			if !ls.Ready {
				ls.Waiting = "certificate " + l.slot.Name() + " has not loaded"
				if e := l.slot.Status().LastError; e != "" {
					ls.Waiting += ": " + e
				}
			}
		}
		st.Ready = st.Ready && ls.Ready
		st.Listeners = append(st.Listeners, ls)
	}
	for _, s := range g.allSlots() {
		st.Certificates = append(st.Certificates, s.Status())
	}
	sort.Slice(st.Certificates, func(i, j int) bool { return st.Certificates[i].Name < st.Certificates[j].Name })
	for _, b := range g.backends {
		st.Backends = append(st.Backends, b.Status()...)
	}
	return st
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

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
