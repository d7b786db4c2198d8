package config_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/keygate/keygate/internal/gateway/config"
	"github.com/keygate/keygate/internal/gateway/gwtest"
)

// baseYAML is the issue's example, complete; %PFX% is replaced by a real
// PFX made in the test.
const baseYAML = `
name: edge
identity:
  clientId: 00000000-0000-0000-0000-000000000000
sslPolicy:
  policyType: Predefined
  policyName: AppGwSslPolicy20220101
frontendIPConfigurations:
  - name: loopback
    privateIPAddress: 127.0.0.1
frontendPorts:
  - name: https
    port: 443
  - name: http
    port: 80
sslCertificates:
  - name: site
    keyVaultSecretId: https://vault.example.internal/secrets/site
  - name: legacy
    data: "%PFX%"
    password: hunter2
trustedRootCertificates:
  - name: backend-ca
    keyVaultSecretId: https://vault.example.internal/secrets/backend-ca/0123456789abcdef0123456789abcdef
httpListeners:
  - name: site
    frontendPort: https
    protocol: Https
    hostNames: [www.example.test, "*.example.test"]
    sslCertificate: site
  - name: legacy
    frontendPort: https
    protocol: Https
    hostName: legacy.example.org
    requireServerNameIndication: true
    sslCertificate: legacy
  - name: plain
    frontendPort: http
    protocol: Http
backendAddressPools:
  - name: app
    backendAddresses: [{ipAddress: 10.0.0.4}, {fqdn: app.internal}]
backendHttpSettingsCollection:
  - name: app-http
    port: 8080
    protocol: Http
    requestTimeout: 30
    cookieBasedAffinity: Enabled
  - name: app-https
    port: 8443
    protocol: Https
    trustedRootCertificates: [backend-ca]
    probe: health
probes:
  - name: health
    protocol: Https
    host: app.internal
    path: /healthz
    interval: 5
    timeout: 2
    unhealthyThreshold: 2
    match: {statusCodes: ["200-399"], body: ok}
redirectConfigurations:
  - name: to-https
    redirectType: Permanent
    targetListener: legacy
    includePath: true
    includeQueryString: true
urlPathMaps:
  - name: paths
    defaultBackendAddressPool: app
    defaultBackendHttpSettings: app-http
    pathRules:
      - name: api
        paths: [/api/*]
        backendAddressPool: app
        backendHttpSettings: app-https
requestRoutingRules:
  - name: site
    ruleType: PathBasedRouting
    priority: 100
    httpListener: site
    urlPathMap: paths
  - name: legacy
    ruleType: Basic
    priority: 200
    httpListener: legacy
    backendAddressPool: app
    backendHttpSettings: app-http
  - name: plain
    ruleType: Basic
    priority: 300
    httpListener: plain
    redirectConfiguration: to-https
`

func baseDoc(t *testing.T) string {
	t.Helper()
	ca := gwtest.NewCA(t, "test CA")
	leaf := ca.Issue(t, gwtest.ECDSA, "legacy.example.org")
	return strings.Replace(baseYAML, "%PFX%", leaf.PFX(t, "hunter2"), 1)
}

func TestLoadIssueExample(t *testing.T) {
	g, err := config.Parse([]byte(baseDoc(t)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := g.HTTPListeners[0].Address(); got != "127.0.0.1:443" {
		t.Errorf("listener address = %q, want 127.0.0.1:443", got)
	}
	if g.SSLCertificates[1].Inline() == nil || g.SSLCertificates[1].Inline().KeyPair == nil {
		t.Error("inline PFX not decoded")
	}
	if id := g.SSLCertificates[0].SecretID(); id.VaultURL != "https://vault.example.internal" || id.Name != "site" || id.Version != "" {
		t.Errorf("secret id = %+v", id)
	}
	if id := g.TrustedRootCertificates[0].SecretID(); id.Version != "0123456789abcdef0123456789abcdef" {
		t.Errorf("versioned secret id = %+v", id)
	}
	if got := g.Policy().Name; got != "AppGwSslPolicy20220101" {
		t.Errorf("policy = %q", got)
	}
	// Defaults.
	if s := g.BackendHTTPSettingsCollection[1]; s.RequestTimeout != 20 || s.AffinityCookieName != "ApplicationGatewayAffinity" {
		t.Errorf("settings defaults: timeout %d cookie %q", s.RequestTimeout, s.AffinityCookieName)
	}
	if g.Admin.Address != "127.0.0.1:9090" || g.ShutdownTimeout != 30 || !g.HTTP2() {
		t.Errorf("keygate defaults: admin %q shutdown %d http2 %v", g.Admin.Address, g.ShutdownTimeout, g.HTTP2())
	}
}

// TestARMShapeEqualsFlat converts the example into the ARM resource's
// shape (properties wrappers, references by id, read-only fields) and
// checks that it loads to the same configuration.
func TestARMShapeEqualsFlat(t *testing.T) {
	doc := baseDoc(t)
	flat, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	arm := toARM(t, doc)
	fromARM, err := config.Parse(arm)
	if err != nil {
		t.Fatalf("Parse ARM shape: %v\n%s", err, arm)
	}
	// The ARM identity names the user-assigned identity by resource id;
	// its clientId is the one the flat file gives.
	if got := fromARM.Identity.ClientID; got != flat.Identity.ClientID {
		t.Errorf("identity clientId from ARM = %q, want %q", got, flat.Identity.ClientID)
	}
	fromARM.Identity = flat.Identity
	if d := cmp.Diff(asTree(t, flat), asTree(t, fromARM)); d != "" {
		t.Errorf("ARM shape differs from flat (-flat +arm):\n%s", d)
	}
}

// asTree returns g's exported fields as a generic tree, for comparison.
func asTree(t *testing.T, g *config.Gateway) any {
	t.Helper()
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		t.Fatal(err)
	}
	return tree
}

const gwID = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/applicationGateways/edge"

// refFields maps each reference field to the collection it points into.
var refFields = map[string]string{
	"frontendPort": "frontendPorts", "sslCertificate": "sslCertificates",
	"httpListener": "httpListeners", "targetListener": "httpListeners",
	"backendAddressPool": "backendAddressPools", "defaultBackendAddressPool": "backendAddressPools",
	"backendHttpSettings": "backendHttpSettingsCollection", "defaultBackendHttpSettings": "backendHttpSettingsCollection",
	"probe": "probes", "urlPathMap": "urlPathMaps", "redirectConfiguration": "redirectConfigurations",
	"trustedRootCertificates": "trustedRootCertificates",
}

// toARM rewrites a flat document in the shape `az network
// application-gateway show` prints.
func toARM(t *testing.T, doc string) []byte {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	props := map[string]any{"provisioningState": "Succeeded", "operationalState": "Running",
		"sku": map[string]any{"name": "Standard_v2", "tier": "Standard_v2"}}
	out := map[string]any{"name": m["name"], "id": gwID, "type": "Microsoft.Network/applicationGateways",
		"location": "westeurope", "etag": `W/"1"`, "properties": props,
		"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{
			"/subscriptions/sub/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/gw": map[string]any{
				"clientId": "00000000-0000-0000-0000-000000000000", "principalId": "p"}}}}
	for k, v := range m {
		if k == "name" || k == "identity" {
			continue
		}
		list, ok := v.([]any)
		if !ok {
			props[k] = v
			continue
		}
		var items []any
		for _, it := range list {
			items = append(items, wrapChild(k, it.(map[string]any)))
		}
		props[k] = items
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wrapChild(coll string, item map[string]any) map[string]any {
	name, _ := item["name"].(string)
	inner := map[string]any{"provisioningState": "Succeeded"}
	for k, v := range item {
		if k == "name" {
			continue
		}
		inner[k] = toRefs(k, v)
	}
	if coll == "urlPathMaps" {
		var rules []any
		for _, r := range item["pathRules"].([]any) {
			rules = append(rules, wrapChild("pathRules", r.(map[string]any)))
		}
		inner["pathRules"] = rules
	}
	return map[string]any{"name": name, "id": gwID + "/" + coll + "/" + name, "etag": `W/"1"`, "properties": inner}
}

func toRefs(field string, v any) any {
	coll, ok := refFields[field]
	if !ok {
		return v
	}
	ref := func(name any) any { return map[string]any{"id": gwID + "/" + coll + "/" + name.(string)} }
	if list, ok := v.([]any); ok {
		var out []any
		for _, n := range list {
			out = append(out, ref(n))
		}
		return out
	}
	return ref(v)
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(path, []byte(baseDoc(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path + ".missing"); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

// TestErrors changes one thing in the example and checks the error names
// its place in the file and says what is wrong.
func TestErrors(t *testing.T) {
	ca := gwtest.NewCA(t, "test CA")
	leaf := ca.Issue(t, gwtest.ECDSA, "legacy.example.org")
	certOnly := certOnlyPFX(t, leaf)

	tests := []struct {
		name   string
		change func(m map[string]any)
		want   string
	}{
		{"unknown field", func(m map[string]any) { item(m, "httpListeners", 0)["hostname"] = "x" },
			`httpListeners[0].hostname: unknown field (did you mean "hostName"?)`},
		{"unknown top-level field", func(m map[string]any) { m["listeners2"] = []any{} },
			`listeners2: unknown field`},
		{"wrong type", func(m map[string]any) { item(m, "frontendPorts", 0)["port"] = "443" },
			`frontendPorts[0].port: want a whole number, got a string`},
		{"dangling certificate", func(m map[string]any) { item(m, "httpListeners", 1)["sslCertificate"] = "api" },
			`httpListeners[1].sslCertificate: no sslCertificate named "api"`},
		{"dangling pool", func(m map[string]any) { item(m, "requestRoutingRules", 1)["backendAddressPool"] = "nope" },
			`requestRoutingRules[1].backendAddressPool: no backendAddressPool named "nope"`},
		{"dangling path map target", func(m map[string]any) {
			item(m, "urlPathMaps", 0)["pathRules"].([]any)[0].(map[string]any)["backendHttpSettings"] = "nope"
		}, `urlPathMaps[0].pathRules[0].backendHttpSettings: no backendHttpSettings named "nope"`},
		{"ARM id into the wrong collection", func(m map[string]any) {
			item(m, "httpListeners", 0)["sslCertificate"] = map[string]any{"id": gwID + "/frontendPorts/https"}
		}, `httpListeners[0].sslCertificate: "` + gwID + `/frontendPorts/https" does not refer to sslCertificates`},
		{"duplicate name", func(m map[string]any) {
			item(m, "backendAddressPools", 0)["name"] = "app"
			appendItem(m, "backendAddressPools", map[string]any{"name": "app"})
		},
			`backendAddressPools[1].name: "app" is already the name of backendAddressPools[0]`},
		{"two listeners claim a host", func(m map[string]any) { item(m, "httpListeners", 1)["hostName"] = "WWW.example.test" },
			`httpListeners[1]: claims host name "WWW.example.test" on 127.0.0.1:443, as httpListeners[0] does`},
		{"two basic listeners on a port", func(m map[string]any) {
			appendItem(m, "httpListeners", map[string]any{"name": "plain2", "frontendPort": "http", "protocol": "Http"})
			appendItem(m, "requestRoutingRules", map[string]any{"name": "plain2", "ruleType": "Basic", "priority": 400,
				"httpListener": "plain2", "redirectConfiguration": "to-https"})
		}, `httpListeners[3]: claims no host name (a basic listener) on 127.0.0.1:80, as httpListeners[2] does`},
		{"Http and Https on one port", func(m map[string]any) { item(m, "httpListeners", 2)["frontendPort"] = "https" },
			`httpListeners[2].protocol: Http on 127.0.0.1:443, where httpListeners[0] is Https`},
		{"Https without certificate", func(m map[string]any) { delete(item(m, "httpListeners", 0), "sslCertificate") },
			`httpListeners[0].sslCertificate: missing: name a sslCertificate`},
		{"PFX wrong password", func(m map[string]any) { item(m, "sslCertificates", 1)["password"] = "wrong" },
			`sslCertificates[1].data: opening PFX: the password is wrong`},
		{"PFX not base64", func(m map[string]any) { item(m, "sslCertificates", 1)["data"] = "%%%" },
			`sslCertificates[1].data: not base64 PFX data`},
		{"PFX without key", func(m map[string]any) { item(m, "sslCertificates", 1)["data"] = certOnly },
			`sslCertificates[1].data: opening PFX: no private key in it`},
		{"PFX garbage", func(m map[string]any) { item(m, "sslCertificates", 1)["data"] = "aGVsbG8gd29ybGQ=" },
			`sslCertificates[1].data: opening PFX:`},
		{"certificate with data and id", func(m map[string]any) {
			item(m, "sslCertificates", 1)["keyVaultSecretId"] = "https://v.example/secrets/x"
		},
			`sslCertificates[1]: give data or keyVaultSecretId, not both`},
		{"secret id of a certificate", func(m map[string]any) {
			item(m, "sslCertificates", 0)["keyVaultSecretId"] = "https://v.example/certificates/x"
		},
			`sslCertificates[0].keyVaultSecretId: names a certificate: use its secret`},
		{"secret id over http", func(m map[string]any) {
			item(m, "sslCertificates", 0)["keyVaultSecretId"] = "http://v.example/secrets/x"
		},
			`sslCertificates[0].keyVaultSecretId: the vault must be reached over https`},
		{"secret id bad version", func(m map[string]any) {
			item(m, "sslCertificates", 0)["keyVaultSecretId"] = "https://v.example/secrets/x/latest"
		},
			`sslCertificates[0].keyVaultSecretId: "latest" is not a secret version (32 hex digits)`},
		{"wildcard refused: two stars in a label", func(m map[string]any) { item(m, "httpListeners", 0)["hostNames"] = []any{"**.example.test"} },
			`httpListeners[0].hostNames[0]: "**.example.test": '*' may appear only once in a label`},
		{"wildcard refused: star beside question mark", func(m map[string]any) { item(m, "httpListeners", 0)["hostNames"] = []any{"*?.example.test"} },
			`httpListeners[0].hostNames[0]: "*?.example.test": '*' may not stand next to '?'`},
		{"wildcard refused: three stars", func(m map[string]any) { item(m, "httpListeners", 0)["hostNames"] = []any{"*.a*.*.test"} },
			`httpListeners[0].hostNames[0]: "*.a*.*.test": at most two '*' in a host name`},
		{"wildcard refused: five wildcards", func(m map[string]any) { item(m, "httpListeners", 0)["hostNames"] = []any{"????.example.*"} },
			`httpListeners[0].hostNames[0]: "????.example.*": at most four wildcard characters in a host name`},
		{"wildcard refused: bad character", func(m map[string]any) { item(m, "httpListeners", 0)["hostNames"] = []any{"a_b.example.test"} },
			`httpListeners[0].hostNames[0]: "a_b.example.test": '_' is not allowed`},
		{"wildcard in hostName", func(m map[string]any) { item(m, "httpListeners", 1)["hostName"] = "*.example.org" },
			`httpListeners[1].hostName: "*.example.org" has a wildcard: use hostNames for wildcard names`},
		{"six host names", func(m map[string]any) {
			item(m, "httpListeners", 0)["hostNames"] = []any{"a.t", "b.t", "c.t", "d.t", "e.t", "f.t"}
		},
			`httpListeners[0].hostNames: 6 names: a listener takes at most 5`},
		{"hostName and hostNames", func(m map[string]any) { item(m, "httpListeners", 0)["hostName"] = "x.example.test" },
			`httpListeners[0]: give hostName or hostNames, not both`},
		{"redirect to a wildcard listener", func(m map[string]any) { item(m, "redirectConfigurations", 0)["targetListener"] = "site" },
			`redirectConfigurations[0].targetListener: listener "site" has a wildcard or several host names`},
		{"redirect type", func(m map[string]any) { item(m, "redirectConfigurations", 0)["redirectType"] = "Moved" },
			`redirectConfigurations[0].redirectType: "Moved" is not one of Permanent, Found, SeeOther, Temporary`},
		{"rule with backend and redirect", func(m map[string]any) { item(m, "requestRoutingRules", 1)["redirectConfiguration"] = "to-https" },
			`requestRoutingRules[1]: give a backend (backendAddressPool and backendHttpSettings) or a redirectConfiguration, not both`},
		{"listener used twice", func(m map[string]any) { item(m, "requestRoutingRules", 2)["httpListener"] = "legacy" },
			`requestRoutingRules[2].httpListener: listener "legacy" is already used by requestRoutingRules[1]`},
		{"duplicate priority", func(m map[string]any) { item(m, "requestRoutingRules", 2)["priority"] = 100 },
			`requestRoutingRules[2].priority: 100 is already the priority of requestRoutingRules[0]`},
		{"priority out of range", func(m map[string]any) { item(m, "requestRoutingRules", 2)["priority"] = 20001 },
			`requestRoutingRules[2].priority: 20001 is out of range 1 to 20000`},
		{"path pattern", func(m map[string]any) {
			item(m, "urlPathMaps", 0)["pathRules"].([]any)[0].(map[string]any)["paths"] = []any{"/a/*/b"}
		}, `urlPathMaps[0].pathRules[0].paths[0]: "/a/*/b": '*' may appear only at the end`},
		{"probe status range", func(m map[string]any) {
			item(m, "probes", 0)["match"] = map[string]any{"statusCodes": []any{"399-200"}}
		},
			`probes[0].match.statusCodes[0]: "399-200" is not a status code or a range such as 200-399`},
		{"probe without host", func(m map[string]any) { delete(item(m, "probes", 0), "host") },
			`probes[0].host: missing: give host, or set pickHostNameFromBackendHttpSettings`},
		{"settings port", func(m map[string]any) { item(m, "backendHttpSettingsCollection", 0)["port"] = 70000 },
			`backendHttpSettingsCollection[0].port: 70000 is out of range 1 to 65535`},
		{"trusted roots on Http", func(m map[string]any) {
			item(m, "backendHttpSettingsCollection", 0)["trustedRootCertificates"] = []any{"backend-ca"}
		},
			`backendHttpSettingsCollection[0].trustedRootCertificates: only an Https backend is verified against trusted roots`},
		{"backend address", func(m map[string]any) {
			item(m, "backendAddressPools", 0)["backendAddresses"] = []any{map[string]any{"ipAddress": "10.0.0.300"}}
		}, `backendAddressPools[0].backendAddresses[0].ipAddress: "10.0.0.300" is not an IP address`},
		{"policy name", func(m map[string]any) { m["sslPolicy"] = map[string]any{"policyName": "AppGwSslPolicy2099"} },
			`sslPolicy.policyName: "AppGwSslPolicy2099" is not a predefined policy`},
		{"custom policy with a DHE suite", func(m map[string]any) {
			m["sslPolicy"] = map[string]any{"policyType": "Custom", "minProtocolVersion": "TLSv1_2",
				"cipherSuites": []any{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"}}
		}, `sslPolicy.cipherSuites[1]: TLS_DHE_RSA_WITH_AES_128_GCM_SHA256 cannot be offered: Go's crypto/tls has no DHE key exchange`},
		{"custom policy with a SHA384 CBC suite", func(m map[string]any) {
			m["sslPolicy"] = map[string]any{"policyType": "Custom", "minProtocolVersion": "TLSv1_0",
				"cipherSuites": []any{"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"}}
		}, `sslPolicy.cipherSuites[0]: TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384 cannot be offered: Go's crypto/tls does not implement it`},
		{"custom v1 with TLS 1.3", func(m map[string]any) {
			m["sslPolicy"] = map[string]any{"policyType": "Custom", "minProtocolVersion": "TLSv1_3", "cipherSuites": []any{"TLS_AES_128_GCM_SHA256"}}
		}, `sslPolicy.minProtocolVersion: TLSv1_3 needs policyType CustomV2`},
		{"client secret inline", func(m map[string]any) {
			m["keyVault"] = map[string]any{"credential": map[string]any{"type": "ClientSecret", "tenantId": "t", "clientId": "c", "clientSecret": "s3cret"}}
		}, `keyVault.credential.clientSecret: a secret is never written in the configuration`},
		{"client secret without a place", func(m map[string]any) {
			m["keyVault"] = map[string]any{"credential": map[string]any{"type": "ClientSecret", "tenantId": "t", "clientId": "c"}}
		}, `keyVault.credential: give the secret's place: clientSecretFile or clientSecretEnv`},
		{"listener without rule", func(m map[string]any) {
			appendItem(m, "httpListeners", map[string]any{"name": "lonely", "frontendPort": "http", "protocol": "Http", "hostName": "lonely.test"})
		}, `httpListeners[3]: no requestRoutingRule uses this listener`},
		{"properties given twice", func(m map[string]any) {
			item(m, "frontendPorts", 0)["properties"] = map[string]any{"port": 444}
		}, `frontendPorts[0].properties.port: given both inside and outside properties`},
		{"duplicate key", nil, `reading the file:`},
		{"session resumption", func(m map[string]any) { m["tlsSessionResumption"] = "Off" },
			`tlsSessionResumption: "Off" is not one of Enabled, Disabled`},
		{"admin address", func(m map[string]any) { m["admin"] = map[string]any{"address": "9090"} },
			`admin.address: "9090" is not host:port (or off)`},
		{"poll interval not a duration", func(m map[string]any) { m["keyVaultPollInterval"] = "4 hours" },
			`keyVaultPollInterval: "4 hours" is not a duration: write it like 4h, 15m or 90s, or as a number of seconds`},
		{"poll interval too short", func(m map[string]any) { m["keyVaultPollInterval"] = "500ms" },
			`keyVaultPollInterval: 500ms is shorter than the minimum, 1s`},
		{"poll interval negative seconds", func(m map[string]any) { m["keyVaultPollInterval"] = -5 },
			`keyVaultPollInterval: -5s is shorter than the minimum, 1s`},
		{"poll interval of the wrong type", func(m map[string]any) { m["keyVaultPollInterval"] = true },
			`keyVaultPollInterval: want a duration such as 4h or a number of seconds, got true`},
		{"on key vault error", func(m map[string]any) { m["onKeyVaultError"] = "Ignore" },
			`onKeyVaultError: "Ignore" is not one of KeepLastGood, DisableListener`},
		{"cache path is a file", func(m map[string]any) {
			m["certificateCache"] = map[string]any{"path": writeFile(t, "not-a-folder", "x")}
		}, `certificateCache.path: `},
		{"cache key in the file", func(m map[string]any) { m["certificateCache"] = map[string]any{"path": "/tmp", "key": "s3cret"} },
			`certificateCache.key: unknown field`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var doc []byte
			if tc.change == nil {
				doc = []byte("name: a\nname: b\n")
			} else {
				doc = changed(t, leaf, tc.change)
			}
			g, err := config.Parse(doc)
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q", tc.want)
			}
			if g != nil {
				t.Error("Parse returned a configuration with its error")
			}
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want config.Errors", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error reveals a secret: %v", err)
			}
		})
	}
}

func changed(t *testing.T, leaf *gwtest.Leaf, change func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	doc := strings.Replace(baseYAML, "%PFX%", leaf.PFX(t, "hunter2"), 1)
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	change(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func item(m map[string]any, coll string, i int) map[string]any {
	return m[coll].([]any)[i].(map[string]any)
}

func appendItem(m map[string]any, coll string, it map[string]any) {
	m[coll] = append(m[coll].([]any), it)
}

// certOnlyPFX returns base64 PKCS#12 holding the leaf's certificate and no
// key, encrypted with the example's password.
func certOnlyPFX(t *testing.T, leaf *gwtest.Leaf) string {
	t.Helper()
	der, err := pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{leaf.Cert}, "hunter2")
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRotationSettings reads keyVaultPollInterval as a duration or as
// seconds, and fills in the defaults: 4 hours, KeepLastGood, no cache.
func TestRotationSettings(t *testing.T) {
	tests := []struct {
		extra    string
		interval time.Duration
		policy   string
		disables bool
	}{
		{"", 4 * time.Hour, config.KeepLastGood, false},
		{"keyVaultPollInterval: 90s\nonKeyVaultError: disablelistener\n", 90 * time.Second, config.DisableListener, true},
		{"keyVaultPollInterval: 30\n", 30 * time.Second, config.KeepLastGood, false},
		{"keyVaultPollInterval: 1.5\nonKeyVaultError: KeepLastGood\n", 1500 * time.Millisecond, config.KeepLastGood, false},
		{"keyVaultPollInterval: 1h30m\n", 90 * time.Minute, config.KeepLastGood, false},
	}
	for _, tc := range tests {
		g, err := config.Parse([]byte(baseDoc(t) + tc.extra))
		if err != nil {
			t.Fatalf("%q: %v", tc.extra, err)
		}
		if g.PollInterval() != tc.interval || g.OnKeyVaultError != tc.policy || g.DisablesListeners() != tc.disables {
			t.Errorf("%q: interval %v, policy %q; want %v, %q", tc.extra, g.PollInterval(), g.OnKeyVaultError, tc.interval, tc.policy)
		}
		if g.CertificateCache.Path != "" {
			t.Errorf("%q: cache on by default", tc.extra)
		}
	}
	dir := t.TempDir()
	g, err := config.Parse([]byte(baseDoc(t) + "certificateCache: {path: " + dir + "}\n"))
	if err != nil || g.CertificateCache.Path != dir {
		t.Errorf("certificateCache: %v, %+v", err, g)
	}
}

// TestOffSettings accepts a bare YAML off, which YAML reads as false.
func TestOffSettings(t *testing.T) {
	doc := baseDoc(t) + "admin: {address: off}\naccessLog: {path: \"off\"}\n"
	g, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if g.Admin.Address != config.Off || g.AccessLog.Path != config.Off {
		t.Errorf("admin %q, access log %q; want both off", g.Admin.Address, g.AccessLog.Path)
	}
}

// TestValidateInCode validates a configuration built as a struct, the way
// an embedding program (keygate up) makes one.
func TestValidateInCode(t *testing.T) {
	g := &config.Gateway{
		Name:          "code",
		FrontendPorts: []config.FrontendPort{{Name: "http", Port: 8080}},
		HTTPListeners: []config.HTTPListener{{Name: "web", FrontendPort: "http", Protocol: "http"}},
		BackendAddressPools: []config.BackendAddressPool{{Name: "app",
			BackendAddresses: []config.BackendAddress{{IPAddress: "127.0.0.1"}}}},
		BackendHTTPSettingsCollection: []config.BackendHTTPSettings{{Name: "app", Port: 9000, Protocol: "Http"}},
		RequestRoutingRules: []config.RequestRoutingRule{{Name: "web", RuleType: "Basic", HTTPListener: "web",
			BackendAddressPool: "app", BackendHTTPSettings: "app"}},
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if g.HTTPListeners[0].Protocol != config.ProtocolHTTP || g.HTTPListeners[0].Address() != ":8080" {
		t.Errorf("listener after Validate: %+v at %q", g.HTTPListeners[0], g.HTTPListeners[0].Address())
	}
	g.RequestRoutingRules[0].BackendAddressPool = "nope"
	if err := g.Validate(); err == nil || !strings.Contains(err.Error(), `no backendAddressPool named "nope"`) {
		t.Errorf("Validate of a dangling reference: %v", err)
	}
}
