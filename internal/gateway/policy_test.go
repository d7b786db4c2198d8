package gateway_test

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/gateway/gwtest"
)

// Suites, as Application Gateway's policy table names them, that Go's
// crypto/tls implements; the policies' other suites are not offered.
const (
	rsaGCM256    = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
	rsaGCM128    = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
	rsaCBC256SHA = "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
	rsaCBC128SHA = "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
	rsaCBC128256 = "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"
	ecGCM256     = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
	ecGCM128     = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
	ecCBC256SHA  = "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
	ecCBC128SHA  = "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
	ecCBC128256  = "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"
	kexGCM256    = "TLS_RSA_WITH_AES_256_GCM_SHA384"
	kexGCM128    = "TLS_RSA_WITH_AES_128_GCM_SHA256"
	kexCBC128256 = "TLS_RSA_WITH_AES_128_CBC_SHA256"
	kexCBC256    = "TLS_RSA_WITH_AES_256_CBC_SHA"
	kexCBC128    = "TLS_RSA_WITH_AES_128_CBC_SHA"
	kex3DES      = "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
)

var (
	v10, v11, v12, v13 = uint16(tls.VersionTLS10), uint16(tls.VersionTLS11), uint16(tls.VersionTLS12), uint16(tls.VersionTLS13)
	allVersions        = []uint16{v10, v11, v12, v13}
)

// TestSSLPolicies starts a gateway per policy, with an RSA and an ECDSA
// listener, and dials every protocol version and every TLS 1.0 to 1.2
// suite Go can offer, checking each is accepted exactly when the policy
// (as Azure documents it) allows it.
func TestSSLPolicies(t *testing.T) {
	ca := gwtest.NewCA(t, "CA")
	rsaLeaf := ca.Issue(t, gwtest.RSA, "rsa.example.test")
	ecLeaf := ca.Issue(t, gwtest.ECDSA, "ecdsa.example.test")
	pool := gwtest.StartPool(t, "app", 1, nil)

	policies := []struct {
		name     string
		policy   string
		versions []uint16
		suites   []string
	}{
		{"AppGwSslPolicy20150501", `{policyType: Predefined, policyName: AppGwSslPolicy20150501}`,
			[]uint16{v10, v11, v12},
			[]string{rsaGCM256, rsaGCM128, rsaCBC128256, rsaCBC256SHA, rsaCBC128SHA, kexGCM256, kexGCM128,
				kexCBC128256, kexCBC256, kexCBC128, ecGCM256, ecGCM128, ecCBC128256, ecCBC256SHA, ecCBC128SHA, kex3DES}},
		{"AppGwSslPolicy20170401", `{policyName: AppGwSslPolicy20170401}`,
			[]uint16{v11, v12},
			[]string{rsaGCM256, rsaGCM128, rsaCBC256SHA, rsaCBC128SHA, kexGCM256, kexGCM128, kexCBC128256, kexCBC256,
				kexCBC128, ecGCM256, ecGCM128, ecCBC128256, ecCBC256SHA, ecCBC128SHA}},
		{"AppGwSslPolicy20170401S", `{policyType: Predefined, policyName: AppGwSslPolicy20170401S}`,
			[]uint16{v12},
			[]string{rsaGCM256, rsaGCM128, rsaCBC256SHA, rsaCBC128SHA, kexGCM256, kexGCM128, kexCBC128256, kexCBC256,
				kexCBC128, ecGCM256, ecGCM128, ecCBC128256, ecCBC256SHA, ecCBC128SHA}},
		{"AppGwSslPolicy20220101 (default)", ``,
			[]uint16{v12, v13},
			[]string{rsaGCM256, rsaGCM128, rsaCBC128256, ecGCM256, ecGCM128, ecCBC128256}},
		{"AppGwSslPolicy20220101S", `{policyType: Predefined, policyName: AppGwSslPolicy20220101S}`,
			[]uint16{v12, v13},
			[]string{rsaGCM256, rsaGCM128, ecGCM256, ecGCM128}},
		{"Custom", `{policyType: Custom, minProtocolVersion: TLSv1_1, cipherSuites: [` + rsaCBC128SHA + `, ` + ecCBC256SHA + `, ` + ecGCM256 + `]}`,
			[]uint16{v11, v12},
			[]string{rsaCBC128SHA, ecCBC256SHA, ecGCM256}},
		{"CustomV2 TLS 1.2", `{policyType: CustomV2, minProtocolVersion: TLSv1_2, cipherSuites: [TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, ` + ecGCM128 + `, ` + rsaGCM256 + `]}`,
			[]uint16{v12, v13},
			[]string{ecGCM128, rsaGCM256}},
		{"CustomV2 TLS 1.3", `{policyType: CustomV2, minProtocolVersion: TLSv1_3, cipherSuites: [TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384]}`,
			[]uint16{v13},
			nil},
	}
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			addr := startPolicyGateway(t, p.policy, rsaLeaf, ecLeaf, pool[0])
			checkVersions(t, addr, ca, p.versions)
			checkSuites(t, addr, ca, p.suites)
		})
	}
}

func startPolicyGateway(t *testing.T, policy string, rsaLeaf, ecLeaf *gwtest.Leaf, be *gwtest.Backend) string {
	t.Helper()
	if policy != "" {
		policy = "sslPolicy: " + policy
	}
	port := gwtest.FreePort(t, "127.0.0.1")
	gw := startGateway(t, yamlf(`
admin: {address: "off"}
%s
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: https, port: %d}]
sslCertificates:
  - {name: rsa, data: "%s"}
  - {name: ecdsa, data: "%s"}
httpListeners:
  - {name: rsa, frontendPort: https, protocol: Https, hostName: rsa.example.test, sslCertificate: rsa}
  - {name: ecdsa, frontendPort: https, protocol: Https, hostName: ecdsa.example.test, sslCertificate: ecdsa}
backendAddressPools: [{name: app, backendAddresses: [{ipAddress: %s}]}]
backendHttpSettingsCollection: [{name: app, port: %d, protocol: Http}]
requestRoutingRules:
  - {name: rsa, ruleType: Basic, httpListener: rsa, backendAddressPool: app, backendHttpSettings: app}
  - {name: ecdsa, ruleType: Basic, httpListener: ecdsa, backendAddressPool: app, backendHttpSettings: app}
`, policy, port, rsaLeaf.PFX(t, ""), ecLeaf.PFX(t, ""), be.IP, be.Port))
	return gw.Addr("rsa")
}

// checkVersions dials each version alone, offering every suite, on both
// listeners.
func checkVersions(t *testing.T, addr string, ca *gwtest.CA, allowed []uint16) {
	t.Helper()
	for _, v := range allVersions {
		for _, sni := range []string{"rsa.example.test", "ecdsa.example.test"} {
			cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: v, MaxVersion: v, CipherSuites: everySuite()}
			cs, err := handshake(addr, sni, cfg)
			want := slices.Contains(allowed, v)
			switch {
			case want && err != nil:
				t.Errorf("%s over %s refused: %v", sni, tls.VersionName(v), err)
			case !want && err == nil:
				t.Errorf("%s over %s accepted (suite %s)", sni, tls.VersionName(v), tls.CipherSuiteName(cs.CipherSuite))
			case err == nil && cs.Version != v:
				t.Errorf("%s: negotiated %s, want %s", sni, tls.VersionName(cs.Version), tls.VersionName(v))
			case err == nil && v == v13 && !strings.HasPrefix(tls.CipherSuiteName(cs.CipherSuite), "TLS_AES_") &&
				cs.CipherSuite != tls.TLS_CHACHA20_POLY1305_SHA256:
				t.Errorf("TLS 1.3 suite %s", tls.CipherSuiteName(cs.CipherSuite))
			}
		}
	}
}

// checkSuites offers each TLS 1.0 to 1.2 suite alone over TLS 1.2 (the
// highest version that has it) to the listener whose key type the suite
// needs.
func checkSuites(t *testing.T, addr string, ca *gwtest.CA, allowed []string) {
	t.Helper()
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if slices.Contains(s.SupportedVersions, tls.VersionTLS13) {
			continue
		}
		sni := "rsa.example.test"
		if strings.Contains(s.Name, "ECDSA") {
			sni = "ecdsa.example.test"
		}
		cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: v10, MaxVersion: v12, CipherSuites: []uint16{s.ID}}
		cs, err := handshake(addr, sni, cfg)
		want := slices.Contains(allowed, s.Name)
		switch {
		case want && err != nil:
			t.Errorf("%s refused: %v", s.Name, err)
		case !want && err == nil:
			t.Errorf("%s accepted over %s", s.Name, tls.VersionName(cs.Version))
		case err == nil && cs.CipherSuite != s.ID:
			t.Errorf("offered %s alone, negotiated %s", s.Name, tls.CipherSuiteName(cs.CipherSuite))
		}
	}
}

func everySuite() []uint16 {
	var ids []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		ids = append(ids, s.ID)
	}
	return ids
}
