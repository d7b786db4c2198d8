// Package metrics holds the gateway's Prometheus metrics: requests and
// their latency by listener, TLS handshakes by listener, protocol version
// and result, and the health of backend servers. Labels carry names from
// the configuration, addresses and codes, never secret material.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one gateway's set of metrics, in a registry of its own so
// that several gateways in one process (as in tests) do not collide. Safe
// for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	gateway string

	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	handshakes    *prometheus.CounterVec
	backendHealth *prometheus.GaugeVec
	reloads       *prometheus.CounterVec
	lastReload    prometheus.Gauge
}

// New makes the metrics for the gateway named gateway.
func New(gateway string) *Metrics {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"gateway": gateway}
	m := &Metrics{
		reg: reg, gateway: gateway,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_gateway_requests_total", ConstLabels: labels,
			Help: "Requests answered, by listener and HTTP status code.",
		}, []string{"listener", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keygate_gateway_request_duration_seconds", ConstLabels: labels,
			Help:    "Time from a request's arrival to the end of its answer, by listener.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"listener"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_gateway_tls_handshakes_total", ConstLabels: labels,
			Help: "TLS handshakes, by listener, protocol version and result: success (a full handshake), resumed, or failure.",
		}, []string{"listener", "version", "result"}),
		backendHealth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keygate_gateway_backend_health", ConstLabels: labels,
			Help: "1 when a backend server passes its health probe, 0 when it does not.",
		}, []string{"pool", "settings", "address"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_gateway_config_reloads_total", ConstLabels: labels,
			Help: "Reloads of the configuration, by result: success or failure (the old configuration kept serving).",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keygate_gateway_config_last_reload_success_timestamp_seconds", ConstLabels: labels,
			Help: "When the configuration in force was applied, in seconds since the epoch: at start, then at each successful reload.",
		}),
	}
	// Both results show from the start, so that a rate over them works
	// before the first reload.
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	reg.MustRegister(m.requests, m.duration, m.handshakes, m.backendHealth, m.reloads, m.lastReload,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry the metrics are in, for more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handshake counts a TLS handshake.
func (m *Metrics) Handshake(listener, version, result string) {
	m.handshakes.WithLabelValues(listener, version, result).Inc()
}

// BackendHealth sets a backend server's health.
func (m *Metrics) BackendHealth(pool, settings, address string, healthy bool) {
	v := 0.0
	if healthy {
		v = 1
	}
	m.backendHealth.WithLabelValues(pool, settings, address).Set(v)
}

// Loaded records that a configuration was put in force at t: at start
// or by a successful reload.
func (m *Metrics) Loaded(t time.Time) { m.lastReload.Set(float64(t.UnixNano()) / 1e9) }

// Reload counts a reload of the configuration; a successful one is
// Loaded too.
func (m *Metrics) Reload(ok bool, t time.Time) {
	if !ok {
		m.reloads.WithLabelValues("failure").Inc()
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.Loaded(t)
}

// ForgetBackendMember drops the health series of a backend server a
// reload removed.
func (m *Metrics) ForgetBackendMember(pool, settings, address string) {
	m.backendHealth.DeleteLabelValues(pool, settings, address)
}

// Listener returns the request metrics of one listener, with its label
// values looked up once rather than on every request.
func (m *Metrics) Listener(name string) *Listener {
	return &Listener{m: m, name: name, duration: m.duration.WithLabelValues(name)}
}

// Listener is the request metrics of one listener.
type Listener struct {
	m         *Metrics
	name      string
	duration  prometheus.Observer
	codes     sync.Map // int -> prometheus.Counter
	forgotten atomic.Bool
}

// Forget drops the series of a listener a reload removed, so that
// /metrics no longer shows it. Requests still draining on it go
// uncounted from then on.
func (l *Listener) Forget() {
	l.forgotten.Store(true)
	labels := prometheus.Labels{"listener": l.name}
	l.m.requests.DeletePartialMatch(labels)
	l.m.duration.DeletePartialMatch(labels)
	l.m.handshakes.DeletePartialMatch(labels)
}

// Request counts a request answered with code after d.
func (l *Listener) Request(code int, d time.Duration) {
	if l.forgotten.Load() {
		return
	}
	c, ok := l.codes.Load(code)
	if !ok {
		c, _ = l.codes.LoadOrStore(code, l.m.requests.WithLabelValues(l.name, strconv.Itoa(code)))
	}
	c.(prometheus.Counter).Inc()
	l.duration.Observe(d.Seconds())
}
