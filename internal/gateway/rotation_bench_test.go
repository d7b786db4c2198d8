package gateway_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/vaulttest"
)

// BenchmarkRotationLag measures rotation lag: from a new version stored in
// the vault (the import's answer received) to the first new handshake
// that presents it, over b.N rotations (run it with -benchtime=50x, or
// bench/rotation.sh),
// with push and with polling every second and no event stream. It
// reports the median, p99 and maximum lag in milliseconds. The vault,
// its identity agent, the gateway and the handshakes share the machine.
func BenchmarkRotationLag(b *testing.B) {
	for _, mode := range []struct {
		name  string
		extra string
		opts  gateway.Options
		// spread is the longest random pause before each import, so that
		// imports fall at any point of the poll cycle rather than just
		// after the poll that installed the last version.
		spread time.Duration
	}{
		{"push", "", gateway.Options{}, 50 * time.Millisecond},
		{"poll-1s", "keyVaultPollInterval: 1s", gateway.Options{NoEvents: true}, time.Second},
	} {
		b.Run(mode.name, func(b *testing.B) {
			e := newRotationEnv(b, vaulttest.Options{})
			first := e.ca.Issue(b, gwtest.ECDSA, siteHost)
			e.importCert("site", first)
			gw := startGatewayWith(b, e.doc(siteHost, "/secrets/site", mode.extra), mode.opts)
			waitServed(b, gw, siteHost, first.Serial())
			leaves := make([]*gwtest.Leaf, b.N)
			for i := range leaves {
				leaves[i] = e.ca.Issue(b, gwtest.ECDSA, siteHost)
			}

			lags := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				time.Sleep(rand.N(mode.spread))
				e.importCert("site", leaves[i])
				stored := time.Now()
				lags = append(lags, firstHandshakeWith(b, gw.Addr("site"), leaves[i].Serial()).Sub(stored))
			}
			b.StopTimer()

			slices.Sort(lags)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(lags[len(lags)/2]), "median-ms")
			b.ReportMetric(ms(lags[min(len(lags)-1, len(lags)*99/100)]), "p99-ms")
			b.ReportMetric(ms(lags[len(lags)-1]), "max-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// firstHandshakeWith makes handshakes one after another until one
// presents serial, and returns when that handshake completed: the lag is
// overstated by at most one handshake (about a millisecond here).
func firstHandshakeWith(b *testing.B, addr, serial string) time.Time {
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := servedSerial(addr, siteHost)
		done := time.Now()
		if err == nil && got == serial {
			return done
		}
		if done.After(deadline) {
			b.Fatalf("serial %s not presented within 30s (last %s, %v)", serial, got, err)
		}
	}
}
