package gateway_test

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/store/postgres/pgtest"
	"github.com/keygate/keygate/internal/vaulttest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestRotationThroughAnotherReplica runs two vault replicas on one
// PostgreSQL database. A gateway reads its certificate from, and follows
// the event stream of, replica B; a new version imported through replica
// A reaches it by push (it polls only every four hours).
func TestRotationThroughAnotherReplica(t *testing.T) {
	e := newRotationEnv(t, vaulttest.Options{StoreURL: pgtest.URL(t)})
	b := e.v.StartReplica()
	old := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	e.importCert("site", old)

	doc := strings.Replace(e.doc(siteHost, "/secrets/site", ""), e.v.URL+"/secrets/", b.URL+"/secrets/", 1)
	if !strings.Contains(doc, b.URL) {
		t.Fatal("the gateway's configuration does not name replica B")
	}
	gw := startGatewayWith(t, doc, gateway.Options{})
	waitServed(t, gw, siteHost, old.Serial())
	eventually(t, "the event stream of replica B to open", func() bool {
		vs := gw.Status().Vaults
		return len(vs) == 1 && vs[0].Events.Connected && vs[0].VaultURL == b.URL
	})

	next := e.ca.Issue(t, gwtest.ECDSA, siteHost)
	e.importCert("site", next) // through replica A
	waitServed(t, gw, siteHost, next.Serial())
}
