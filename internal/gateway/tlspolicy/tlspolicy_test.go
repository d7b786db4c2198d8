package tlspolicy

import (
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestPredefined(t *testing.T) {
	tests := []struct {
		name         string
		min, max     uint16
		wantSuite    uint16
		notSuite     uint16
		omittedCount int
	}{
		{"AppGwSslPolicy20150501", tls.VersionTLS10, tls.VersionTLS12, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305, 12},
		{"AppGwSslPolicy20170401", tls.VersionTLS11, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, 2},
		{"AppGwSslPolicy20170401S", tls.VersionTLS12, tls.VersionTLS12, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, 2},
		{"AppGwSslPolicy20220101", tls.VersionTLS12, tls.VersionTLS13, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, 2},
		{"AppGwSslPolicy20220101S", tls.VersionTLS12, tls.VersionTLS13, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, 0},
	}
	for _, tc := range tests {
		p, err := Resolve(Spec{PolicyType: TypePredefined, PolicyName: tc.name})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if p.MinVersion != tc.min || p.MaxVersion != tc.max {
			t.Errorf("%s: versions %x..%x, want %x..%x", tc.name, p.MinVersion, p.MaxVersion, tc.min, tc.max)
		}
		if !slices.Contains(p.CipherSuites, tc.wantSuite) || slices.Contains(p.CipherSuites, tc.notSuite) {
			t.Errorf("%s: suites %v: want %s and not %s", tc.name, p.CipherSuites,
				tls.CipherSuiteName(tc.wantSuite), tls.CipherSuiteName(tc.notSuite))
		}
		if len(p.Omitted) != tc.omittedCount {
			t.Errorf("%s: omitted %v, want %d suites", tc.name, p.Omitted, tc.omittedCount)
		}
	}
}

func TestDefault(t *testing.T) {
	p, err := Resolve(Spec{})
	if err != nil || p.Name != DefaultName {
		t.Fatalf("Resolve(empty) = %v, %v; want %s", p.Name, err, DefaultName)
	}
}

func TestCustom(t *testing.T) {
	p, err := Resolve(Spec{PolicyType: TypeCustomV2, MinProtocolVersion: "TLSv1_3",
		CipherSuites: []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"}})
	if err != nil || p.MinVersion != tls.VersionTLS13 || len(p.CipherSuites) != 0 {
		t.Fatalf("CustomV2 TLS 1.3 only: %+v, %v", p, err)
	}
	p, err = Resolve(Spec{PolicyType: TypeCustom, MinProtocolVersion: "TLSv1_1",
		CipherSuites: []string{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"}, DisabledSSLProtocols: []string{"TLSv1_1"}})
	if err != nil || p.MinVersion != tls.VersionTLS12 || p.MaxVersion != tls.VersionTLS12 {
		t.Fatalf("Custom with TLSv1_1 disabled: %+v, %v", p, err)
	}
}

func TestRefused(t *testing.T) {
	tests := []struct {
		spec  Spec
		field string
		msg   string
	}{
		{Spec{PolicyType: "Fancy"}, "policyType", "not one of"},
		{Spec{PolicyName: "AppGwSslPolicy20220101", MinProtocolVersion: "TLSv1_2"}, "minProtocolVersion", "set by the predefined policy"},
		{Spec{PolicyType: TypeCustom, MinProtocolVersion: "TLSv1_2", CipherSuites: []string{"TLS_DHE_DSS_WITH_AES_128_CBC_SHA"}}, "cipherSuites[0]", "no DHE key exchange"},
		{Spec{PolicyType: TypeCustom, MinProtocolVersion: "TLSv1_2", CipherSuites: []string{"TLS_RSA_WITH_AES_256_CBC_SHA256"}}, "cipherSuites[0]", "does not implement it"},
		{Spec{PolicyType: TypeCustom, MinProtocolVersion: "TLSv1_2", CipherSuites: []string{"TLS_RSA_WITH_RC4_128_SHA"}}, "cipherSuites[0]", "not a cipher suite Application Gateway offers"},
		{Spec{PolicyType: TypeCustom, MinProtocolVersion: "TLSv1_2", CipherSuites: []string{"TLS_AES_128_GCM_SHA256"}}, "cipherSuites[0]", "only with policyType CustomV2"},
		{Spec{PolicyType: TypeCustomV2, MinProtocolVersion: "TLSv1_2"}, "cipherSuites", "no TLS 1.0 to 1.2 cipher suite"},
		{Spec{PolicyType: TypeCustomV2, MinProtocolVersion: "TLSv1_0", CipherSuites: []string{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"},
			DisabledSSLProtocols: []string{"TLSv1_1"}}, "disabledSslProtocols", "contiguous range"},
	}
	for _, tc := range tests {
		_, err := Resolve(tc.spec)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msg) {
			t.Errorf("Resolve(%+v) = %v; want %s: ...%s...", tc.spec, err, tc.field, tc.msg)
		}
	}
}
