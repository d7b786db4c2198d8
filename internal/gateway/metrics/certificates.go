package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CertificateSample is the state of one certificate on one listener, as
// the certificate metrics show it. Listener is empty for a certificate no
// listener serves (a trusted root).
type CertificateSample struct {
	Listener    string
	Certificate string
	NotAfter    time.Time
	LastRefresh time.Time
	Condition   string
	Serving     bool
	Rotations   uint64
}

// VaultSample is the state of one vault's event stream.
type VaultSample struct {
	VaultURL  string
	Connected bool
}

// WatchCertificates adds the certificate metrics, read from certs and
// vaults at each scrape:
//
//	keygate_certificate_expiry_timestamp_seconds{listener,certificate}
//	keygate_certificate_last_refresh_timestamp_seconds{listener,certificate}
//	keygate_certificate_condition{listener,certificate,condition}  1 for the current condition
//	keygate_certificate_serving{listener,certificate}              0 while held back or not loaded
//	keygate_certificate_rotations_total{listener,certificate}
//	keygate_gateway_vault_events_connected{vault}
//
// Call it once.
func (m *Metrics) WatchCertificates(certs func() []CertificateSample, vaults func() []VaultSample) {
	gw := prometheus.Labels{"gateway": m.gateway}
	labels := []string{"listener", "certificate"}
	m.reg.MustRegister(&certCollector{
		certs: certs, vaults: vaults,
		expiry: prometheus.NewDesc("keygate_certificate_expiry_timestamp_seconds",
			"When the certificate in use expires, in Unix seconds.", labels, gw),
		refresh: prometheus.NewDesc("keygate_certificate_last_refresh_timestamp_seconds",
			"When the certificate was last read from its vault with a usable answer, in Unix seconds.", labels, gw),
		condition: prometheus.NewDesc("keygate_certificate_condition",
			"1 for the certificate's condition: OK, or why it cannot be refreshed or used (Application Gateway's codes where they exist).",
			append(labels, "condition"), gw),
		serving: prometheus.NewDesc("keygate_certificate_serving",
			"1 when handshakes get the certificate; 0 before it loads and while onKeyVaultError: DisableListener holds it back.",
			labels, gw),
		rotations: prometheus.NewDesc("keygate_certificate_rotations_total",
			"New versions of the certificate installed since the gateway started.", labels, gw),
		events: prometheus.NewDesc("keygate_gateway_vault_events_connected",
			"1 while the vault's event stream is open; polling goes on either way.", []string{"vault"}, gw),
	})
}

// certCollector reads the certificates' state at scrape time, so that the
// metrics never lag the status page.
type certCollector struct {
	certs  func() []CertificateSample
	vaults func() []VaultSample

	expiry, refresh, condition, serving, rotations, events *prometheus.Desc
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.expiry, c.refresh, c.condition, c.serving, c.rotations, c.events} {
		ch <- d
	}
}

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.certs() {
		if !s.NotAfter.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, unix(s.NotAfter), s.Listener, s.Certificate)
		}
		if !s.LastRefresh.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.refresh, prometheus.GaugeValue, unix(s.LastRefresh), s.Listener, s.Certificate)
		}
		if s.Condition != "" {
			ch <- prometheus.MustNewConstMetric(c.condition, prometheus.GaugeValue, 1, s.Listener, s.Certificate, s.Condition)
		}
		ch <- prometheus.MustNewConstMetric(c.serving, prometheus.GaugeValue, boolValue(s.Serving), s.Listener, s.Certificate)
		ch <- prometheus.MustNewConstMetric(c.rotations, prometheus.CounterValue, float64(s.Rotations), s.Listener, s.Certificate)
	}
	for _, v := range c.vaults() {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.GaugeValue, boolValue(v.Connected), v.VaultURL)
	}
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
