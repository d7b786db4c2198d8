package backend

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Probe is a health probe, resolved from a probes entry or the default.
type Probe struct {
	Name  string
	HTTPS bool

	// Host is the Host header; empty means the settings' host name, else
	// the server's own address (PickHostFromSettings), as the probe's
	// pickHostNameFromBackendHttpSettings asks.
	Host string

	Path string

	// Port overrides the settings' port when not zero.
	Port int

	Interval, Timeout time.Duration

	// UnhealthyThreshold is how many probes in a row must fail before a
	// healthy server is marked down. One success brings it back.
	UnhealthyThreshold int

	// StatusCodes are inclusive ranges of healthy statuses.
	StatusCodes [][2]int

	// Body, when set, must appear in a healthy answer's body.
	Body string
}

// DefaultProbe is the probe of settings that name none, as Application
// Gateway has it: GET / on the settings' protocol and port every 30
// seconds, 200 to 399 healthy, down after 3 failures; the Host header is
// the settings' host name, the server's address with
// pickHostNameFromBackendAddress, else 127.0.0.1.
func DefaultProbe(s *Settings) *Probe {
	p := &Probe{Name: "default", HTTPS: s.HTTPS, Path: "/", Interval: 30 * time.Second,
		Timeout: 30 * time.Second, UnhealthyThreshold: 3, StatusCodes: [][2]int{{200, 399}}}
	if s.HostName == "" && !s.PickHostName {
		p.Host = "127.0.0.1"
	}
	return p
}

// bodyLimit bounds how much of a probe's answer is read for Body.
const bodyLimit = 64 << 10

func (b *Backend) probeLoop(ctx context.Context, p *Probe, m *Member) {
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		err := b.probeOnce(ctx, p, m)
		if ctx.Err() != nil {
			return
		}
		b.record(p, m, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probeOnce sends one probe to m and says why it failed, if it did.
func (b *Backend) probeOnce(ctx context.Context, p *Probe, m *Member) error {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()

	scheme, port := "http", b.Settings.Port
	if p.HTTPS {
		scheme = "https"
	}
	if p.Port != 0 {
		port = p.Port
	}
	addr := net.JoinHostPort(m.Host, strconv.Itoa(port))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+p.Path, nil)
	if err != nil {
		return fmt.Errorf("making probe: %w", err)
	}
	req.Host = p.Host
	if req.Host == "" {
		req.Host = b.HostHeader(m, m.Host)
	}
	req.Header.Set("User-Agent", "keygate-gateway-probe/1.0")

	resp, err := b.probeHC.Do(req)
	if err != nil {
		return fmt.Errorf("probe failed: %w", err)
	}
	defer resp.Body.Close()
	if !statusIn(resp.StatusCode, p.StatusCodes) {
		return fmt.Errorf("probe answered %d", resp.StatusCode)
	}
	if p.Body == "" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, bodyLimit))
	if err != nil {
		return fmt.Errorf("reading probe answer: %w", err)
	}
	if !strings.Contains(string(body), p.Body) {
		return fmt.Errorf("probe answer lacks %q", p.Body)
	}
	return nil
}

func statusIn(code int, ranges [][2]int) bool {
	for _, r := range ranges {
		if code >= r[0] && code <= r[1] {
			return true
		}
	}
	return false
}

// record applies a probe's outcome: a healthy server goes down after
// UnhealthyThreshold failures in a row, an unhealthy one comes back after
// one success, and the first probe of a server decides its state at once.
func (b *Backend) record(p *Probe, m *Member, err error) {
	first := !m.known.Load()
	if err == nil {
		m.fails = 0
		if first || !m.healthy.Load() {
			m.healthy.Store(true)
			m.known.Store(true)
			m.reason.Store(nil)
			b.changed(m, true, "")
		}
		return
	}

	reason := err.Error()
	m.reason.Store(&reason)
	m.fails++
	if first || (m.healthy.Load() && m.fails >= p.UnhealthyThreshold) {
		if b.Settings.Drain > 0 {
			m.drainUntil.Store(b.opts.Now().Add(b.Settings.Drain).UnixNano())
		}
		m.healthy.Store(false)
		m.known.Store(true)
		b.changed(m, false, reason)
	}
}

func (b *Backend) changed(m *Member, healthy bool, reason string) {
	if healthy {
		b.opts.Logger.Info("backend healthy", "pool", b.Pool, "settings", b.Settings.Name, "address", m.Addr)
	} else {
		b.opts.Logger.Warn("backend unhealthy", "pool", b.Pool, "settings", b.Settings.Name,
			"address", m.Addr, "reason", reason)
	}
	if b.opts.OnHealth != nil {
		b.opts.OnHealth(b, m, healthy)
	}
}
