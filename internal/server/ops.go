package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// readyTimeout bounds the store check of /readyz: a probe must answer
// before its prober gives up on it.
const readyTimeout = 2 * time.Second

// openOps listens on Config.OpsListen, when set, for the operations
// endpoints: Prometheus metrics, liveness and readiness. They are plain
// HTTP and unauthenticated, as scrapers and probes expect, and hold
// nothing a client could not learn by asking the vault itself; keep the
// address on loopback or a management network.
func (s *Server) openOps() error {
	if s.cfg.OpsListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.OpsListen)
	if err != nil {
		return fmt.Errorf("listening on %s for metrics and health checks: %w", s.cfg.OpsListen, err)
	}
	s.opsListener = ln
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	s.ops = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// serveReady answers 200 when the store answers a read, and 503 when it
// does not (a replica that lost its database), so that a load balancer
// sends requests to the replicas that can serve them.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	err := s.st.View(ctx, func(store.Tx) error { return nil })
	if err != nil {
		s.log.Debug("readiness check failed", "err", err)
		writeText(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	writeText(w, http.StatusOK, "ready")
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(text + "\n"))
}

// OpsAddr is the address of the operations listener, known once Open has
// returned; empty when there is none.
func (s *Server) OpsAddr() string {
	if s.opsListener == nil {
		return ""
	}
	return s.opsListener.Addr().String()
}
