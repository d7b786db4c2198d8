// Package vaultmetrics holds a vault process's Prometheus metrics:
// requests and their latency by the part of keygate that served them and
// Key Vault's operation name, and the certificate jobs the scheduler ran.
//
// The request metrics are fed by the audit records the handlers already
// make (Metrics is an audit.Logger), so every request counted is one the
// audit log names. Labels carry operation names, status codes and job
// kinds, all from fixed sets; never an object name, a vault name taken
// from a Host header, or secret material.
package vaultmetrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keygate/keygate/internal/audit"
)

// Metrics is one vault process's set of metrics, in a registry of its own
// so that several servers in one process (as in tests) do not collide.
// Safe for concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	jobs     *prometheus.CounterVec
}

// New makes the metrics.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_vault_requests_total",
			Help: "Requests answered, by source (vault, management, authority, agent), operation and HTTP status code.",
		}, []string{"source", "operation", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keygate_vault_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer, by source and operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"source", "operation"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_vault_certificate_jobs_total",
			Help: "Certificate jobs this process ran (create, renew, near-expiry, expired), by result: succeeded or failed.",
		}, []string{"kind", "result"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.jobs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Log counts the request an audit record describes. Event streams are
// counted when they end, with the time they were open.
func (m *Metrics) Log(r audit.Record) {
	m.requests.WithLabelValues(r.Source, r.Operation, strconv.Itoa(r.Status)).Inc()
	m.duration.WithLabelValues(r.Source, r.Operation).Observe(r.DurationMs / 1000)
}

// Job counts a certificate job that ran to its end; err is its outcome.
func (m *Metrics) Job(kind string, err error) {
	result := "succeeded"
	if err != nil {
		result = "failed"
	}
	m.jobs.WithLabelValues(kind, result).Inc()
}
