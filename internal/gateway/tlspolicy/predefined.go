package tlspolicy

import (
	"crypto/tls"
	"sort"
)

// definition is a predefined policy as Azure documents it: the protocol
// versions and every suite it names, whether Go implements it or not.
type definition struct {
	min, max uint16
	suites   []string
}

// The suites of the predefined policies, from Application Gateway's TLS
// policy overview. Shared runs are named once.
var (
	tls13 = []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"}

	ecdheGCM = []string{
		"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
		"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
		"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	}
	ecdheRSACBCSHA2 = []string{
		"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
		"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
	}
	ecdheECDSACBCSHA2 = []string{
		"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
		"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
	}
	ecdheCBCSHA1 = []string{
		"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
		"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
		"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
		"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
	}
	rsaKex = []string{
		"TLS_RSA_WITH_AES_256_GCM_SHA384",
		"TLS_RSA_WITH_AES_128_GCM_SHA256",
		"TLS_RSA_WITH_AES_256_CBC_SHA256",
		"TLS_RSA_WITH_AES_128_CBC_SHA256",
		"TLS_RSA_WITH_AES_256_CBC_SHA",
		"TLS_RSA_WITH_AES_128_CBC_SHA",
	}
	dhe = []string{
		"TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
		"TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
		"TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
		"TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
		"TLS_DHE_DSS_WITH_AES_256_CBC_SHA256",
		"TLS_DHE_DSS_WITH_AES_128_CBC_SHA256",
		"TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
		"TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
		"TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA",
	}
	tripleDES = []string{"TLS_RSA_WITH_3DES_EDE_CBC_SHA"}
)

var predefined = map[string]definition{
	"AppGwSslPolicy20150501": {tls.VersionTLS10, tls.VersionTLS12,
		concat(ecdheGCM, ecdheRSACBCSHA2, ecdheECDSACBCSHA2, ecdheCBCSHA1, rsaKex, dhe, tripleDES)},
	"AppGwSslPolicy20170401": {tls.VersionTLS11, tls.VersionTLS12,
		concat(ecdheGCM, ecdheECDSACBCSHA2, ecdheCBCSHA1, rsaKex)},
	"AppGwSslPolicy20170401S": {tls.VersionTLS12, tls.VersionTLS12,
		concat(ecdheGCM, ecdheECDSACBCSHA2, ecdheCBCSHA1, rsaKex)},
	"AppGwSslPolicy20220101": {tls.VersionTLS12, tls.VersionTLS13,
		concat(tls13, ecdheGCM, ecdheRSACBCSHA2, ecdheECDSACBCSHA2)},
	"AppGwSslPolicy20220101S": {tls.VersionTLS12, tls.VersionTLS13,
		concat(tls13, ecdheGCM)},
}

// azureSuites are the suites a custom policy may name.
var azureSuites = func() map[string]bool {
	m := map[string]bool{}
	for _, d := range predefined {
		for _, s := range d.suites {
			m[s] = true
		}
	}
	return m
}()

func predefinedNames() []string {
	names := make([]string, 0, len(predefined))
	for n := range predefined {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}
