package server_test

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/pki"
	"github.com/keygate/keygate/internal/server"
)

// jsUnicode is a value the JavaScript client sets and reads back: several
// scripts, an emoji outside the BMP, JSON's escapes, HTML's specials.
const jsUnicode = "Grüße, 世界! ✓ 🔑 مرحبا — \"quoted\" \\ back\tslash\n<b>&amp;</b> \u2028"

// TestJavaScriptSDK runs SecretClient and CertificateClient of the Azure
// SDK for JavaScript, signed in with ClientSecretCredential, against a
// vault reached by IP address, in one Node process.
func TestJavaScriptSDK(t *testing.T) {
	needNode(t)
	tv := startVault(t, "")
	dir := t.TempDir()
	pfx, pem := jsImportFiles(t, dir)
	big := randomText(t, 20*1024)
	env := append(tv.jsSecretEnv(),
		"KEYGATE_UNICODE_VALUE="+jsUnicode,
		"KEYGATE_BIG_VALUE="+big,
		"KEYGATE_PFX_FILE="+pfx.file, "KEYGATE_PFX_PASSWORD="+pfx.password,
		"KEYGATE_PEM_FILE="+pem.file,
	)
	out := runNode(t, env, "secrets", "certificates")

	t.Run("secrets", func(t *testing.T) { checkJSSecrets(t, tv, out, big) })
	t.Run("certificates", func(t *testing.T) { checkJSCertificates(t, out, pfx, pem) })
	scanForSecrets(t, tv, []string{tv.creds.ClientSecret, big, pfx.password})
}

// jsImport is a certificate file the JavaScript client imports.
type jsImport struct {
	file, password string
	leaf           *x509.Certificate
}

// jsImportFiles writes a password-protected PFX (RSA) and a PEM file (EC,
// chain in a shuffled order) issued by an outside CA into dir.
func jsImportFiles(t *testing.T, dir string) (pfx, pem jsImport) {
	t.Helper()
	ca := newOutsideCA(t)
	now := time.Now()
	rsa := ca.issue(t, "pfx.js.example", pki.KeySpec{Type: pki.KeyTypeRSA, Size: 2048}, now.Add(-time.Hour), now.Add(30*24*time.Hour))
	ec := ca.issue(t, "pem.js.example", pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, now.Add(-time.Hour), now.Add(30*24*time.Hour))

	pfx = jsImport{file: filepath.Join(dir, "import.pfx"), password: "js-pfx-" + randomText(t, 12), leaf: rsa.Certs[0]}
	der, err := pkcs12.Modern2023.Encode(rsa.Key, rsa.Certs[0], rsa.Certs[1:], pfx.password)
	if err != nil {
		t.Fatal(err)
	}
	pem = jsImport{file: filepath.Join(dir, "import.pem"), leaf: ec.Certs[0]}
	text, err := (&pki.Bundle{Key: ec.Key, Certs: []*x509.Certificate{ec.Certs[2], ec.Certs[0], ec.Certs[1]}}).EncodePEM()
	if err != nil {
		t.Fatal(err)
	}
	for file, b := range map[string][]byte{pfx.file: der, pem.file: text} {
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return pfx, pem
}

// jsSecretsResult is what the secrets scenario reports.
type jsSecretsResult struct {
	Set struct {
		FirstVersion, SecondVersion, LatestVersion string
		LatestIsSecond, ByVersionIsFirst           bool
		ContentType                                string
		Tags                                       map[string]string
		ID, VaultURL                               string
		Created                                    int64
		RecoveryLevel                              string
	}
	Update struct {
		Enabled     bool
		ContentType string
		Tags        map[string]string
		DisabledGet jsError
	}
	Values struct {
		Unicode     string
		UnicodeTags map[string]string
		Big         string
		BigLength   int
	}
	Missing jsError
	Dated   struct {
		NotBefore, ExpiresOn, Enabled bool
		Get                           jsError
	}
	List struct {
		Pages    [][]string
		All      []string
		Versions []struct {
			Version string
			Enabled bool
		}
	}
	Delete struct {
		Name, RecoveryID              string
		DeletedOn, ScheduledPurgeDate int64
		GetDeletedName                string
		Listed                        []string
		SetWhileDeleted               jsError
	}
	Recover struct {
		Name           string
		LatestIsSecond bool
	}
	Backup struct {
		Size            int
		AfterPurge      jsError
		RestoredName    string
		LatestIsSecond  bool
		Versions        int
		RestoreExisting jsError
	}
}

func checkJSSecrets(t *testing.T, tv *testVault, out map[string]json.RawMessage, big string) {
	var r jsSecretsResult
	decodeJS(t, out, "secrets", &r)

	s := r.Set
	if !isVersion(s.FirstVersion) || !isVersion(s.SecondVersion) || s.FirstVersion == s.SecondVersion || s.LatestVersion != s.SecondVersion {
		t.Errorf("versions: first %q, second %q, latest %q", s.FirstVersion, s.SecondVersion, s.LatestVersion)
	}
	if !s.LatestIsSecond || !s.ByVersionIsFirst {
		t.Errorf("values read back: latest is the second %v, by version the first %v", s.LatestIsSecond, s.ByVersionIsFirst)
	}
	if s.ContentType != "text/plain" || !sameJSON(s.Tags, map[string]string{"step": "one"}) {
		t.Errorf("first version's content type %q, tags %v", s.ContentType, s.Tags)
	}
	if s.ID != tv.srv.URL()+"/secrets/js-secret/"+s.SecondVersion || s.VaultURL != tv.srv.URL() {
		t.Errorf("id %q, vault URL %q", s.ID, s.VaultURL)
	}
	if d := time.Since(time.UnixMilli(s.Created)); d < 0 || d > time.Minute || s.RecoveryLevel != "Recoverable+Purgeable" {
		t.Errorf("created %d, recovery level %q", s.Created, s.RecoveryLevel)
	}

	u := r.Update
	if u.Enabled || u.ContentType != "application/json" || !sameJSON(u.Tags, map[string]string{"step": "two"}) {
		t.Errorf("updated properties: enabled %v, content type %q, tags %v", u.Enabled, u.ContentType, u.Tags)
	}
	if u.DisabledGet != (jsError{http.StatusForbidden, "Forbidden"}) {
		t.Errorf("reading the disabled version: %+v, want 403 Forbidden", u.DisabledGet)
	}

	// The values came back intact, and the Go SDK reads what Node wrote.
	v := r.Values
	if v.Unicode != sha256Hex([]byte(jsUnicode)) || !sameJSON(v.UnicodeTags, map[string]string{"schlüssel": "wért ✓"}) {
		t.Errorf("unicode value or tags changed on the way: tags %v", v.UnicodeTags)
	}
	if v.Big != sha256Hex([]byte(big)) || v.BigLength != len(big) {
		t.Errorf("20 KB value came back as %d characters", v.BigLength)
	}
	for name, want := range map[string]string{"js-unicode": jsUnicode, "js-big": big} {
		got, err := tv.secrets.GetSecret(ctxT(t), name, "", nil)
		if err != nil || *got.Value != want {
			t.Errorf("Go SDK reading %s that Node set: %v (value equal: %v)", name, err, err == nil && *got.Value == want)
		}
	}

	if r.Missing != (jsError{http.StatusNotFound, "SecretNotFound"}) {
		t.Errorf("missing secret: %+v, want 404 SecretNotFound", r.Missing)
	}
	if dt := r.Dated; !dt.NotBefore || !dt.ExpiresOn || dt.Enabled || dt.Get != (jsError{http.StatusForbidden, "Forbidden"}) {
		t.Errorf("secret set disabled with nbf and exp: %+v", dt)
	}
	checkJSPaging(t, r)

	d := r.Delete
	if d.Name != "js-secret" || d.RecoveryID != tv.srv.URL()+"/deletedsecrets/js-secret" || d.GetDeletedName != "js-secret" {
		t.Errorf("deleted: name %q, recovery id %q, got %q", d.Name, d.RecoveryID, d.GetDeletedName)
	}
	if d.DeletedOn == 0 || d.ScheduledPurgeDate-d.DeletedOn != 90*24*3600*1000 {
		t.Errorf("deleted on %d, purge scheduled %d: want 90 days apart", d.DeletedOn, d.ScheduledPurgeDate)
	}
	if !slices.Contains(d.Listed, "js-secret") {
		t.Errorf("deleted secrets listed: %v", d.Listed)
	}
	if d.SetWhileDeleted != (jsError{http.StatusConflict, "Conflict"}) {
		t.Errorf("setting a soft-deleted name: %+v, want 409 Conflict", d.SetWhileDeleted)
	}
	if r.Recover.Name != "js-secret" || !r.Recover.LatestIsSecond {
		t.Errorf("recovered: %+v", r.Recover)
	}

	b := r.Backup
	if b.Size == 0 || b.AfterPurge != (jsError{http.StatusNotFound, "SecretNotFound"}) {
		t.Errorf("backup of %d bytes; deleted secret after purge: %+v", b.Size, b.AfterPurge)
	}
	if b.RestoredName != "js-secret" || !b.LatestIsSecond || b.Versions != 2 {
		t.Errorf("restored %q: latest is the second %v, %d versions", b.RestoredName, b.LatestIsSecond, b.Versions)
	}
	if b.RestoreExisting != (jsError{http.StatusConflict, "Conflict"}) {
		t.Errorf("restoring over an existing secret: %+v, want 409 Conflict", b.RestoreExisting)
	}
}

// checkJSPaging checks the listings: 15 secrets in pages of at most 5,
// each once; two versions of js-secret, the first disabled.
func checkJSPaging(t *testing.T, r jsSecretsResult) {
	t.Helper()
	want := []string{"js-big", "js-secret", "js-unicode"}
	for i := range 12 {
		want = append(want, "js-page-"+twoDigits(i))
	}
	slices.Sort(want)
	var paged []string
	for _, p := range r.List.Pages {
		if len(p) == 0 || len(p) > 5 {
			t.Errorf("a page of %d with maxPageSize 5", len(p))
		}
		paged = append(paged, p...)
	}
	if len(r.List.Pages) != 3 || !slices.Equal(sortedCopy(paged), want) {
		t.Errorf("%d pages holding %v, want 3 holding %v", len(r.List.Pages), paged, want)
	}
	if !slices.Equal(sortedCopy(r.List.All), want) {
		t.Errorf("listed without a page size: %v", r.List.All)
	}
	vs := r.List.Versions
	if len(vs) != 2 {
		t.Fatalf("versions of js-secret: %+v", vs)
	}
	enabled := map[string]bool{vs[0].Version: vs[0].Enabled, vs[1].Version: vs[1].Enabled}
	if e, ok := enabled[r.Set.FirstVersion]; !ok || e || !enabled[r.Set.SecondVersion] {
		t.Errorf("versions %+v: want the first disabled, the second enabled", vs)
	}
}

func twoDigits(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

// jsCertificatesResult is what the certificates scenario reports.
type jsCertificatesResult struct {
	PFX struct {
		ImportedVersion, Version, Cer, X5t, SecretID, KeyID, ContentType string
		Managed                                                          bool
		Served                                                           string
	}
	PEM struct {
		Cer, ContentType string
		Secret           struct {
			KeyType  string
			KeyPairs bool
			Cert     string
		}
	}
	Created struct {
		FirstVersion, SecondVersion, Cer string
		Policy                           struct {
			IssuerName, Subject   string
			DNSNames              []string
			KeyType, KeyCurveName string
			ValidityInMonths      int
			ContentType           string
		}
		Versions []string
		Served   string
	}
	Missing   jsError
	Lifecycle struct {
		Update struct {
			Tags             map[string]string
			ValidityInMonths int
			LifetimeActions  []struct {
				Action             string
				LifetimePercentage int
			}
			KeyCurveName  string
			Operation     string
			OperationDone bool
			Listed        []string
		}
		Contacts struct {
			Set, Got    []string
			AfterDelete jsError
		}
		Delete struct {
			RecoveryID                    string
			DeletedOn, ScheduledPurgeDate int64
			GotDeleted                    string
			Listed                        []string
			Recovered                     string
			BackupSize                    int
			AfterPurge                    jsError
			Restored, RestoredCer         string
		}
		Pending struct {
			Status, IssuerName, Version string
			Enabled, HasCer             bool
			CancellationRequested       bool
			Removed                     string
			AfterDelete                 jsError
		}
	}
}

func checkJSCertificates(t *testing.T, out map[string]json.RawMessage, pfx, pem jsImport) {
	var r jsCertificatesResult
	decodeJS(t, out, "certificates", &r)

	p := r.PFX
	if !isVersion(p.Version) || p.Version != p.ImportedVersion {
		t.Errorf("imported version %q, got %q", p.ImportedVersion, p.Version)
	}
	if p.Cer != sha256Hex(pfx.leaf.Raw) || p.X5t != hex.EncodeToString(pki.Thumbprint(pfx.leaf)) {
		t.Errorf("cer or x5t of the imported PFX is not its leaf's")
	}
	if !strings.HasSuffix(p.SecretID, "/secrets/js-pfx/"+p.Version) || !strings.HasSuffix(p.KeyID, "/keys/js-pfx/"+p.Version) {
		t.Errorf("secret id %q, key id %q", p.SecretID, p.KeyID)
	}
	if p.ContentType != "application/x-pkcs12" || !p.Managed {
		t.Errorf("certificate's secret: content type %q, managed %v", p.ContentType, p.Managed)
	}
	if p.Served != sha256Hex(pfx.leaf.Raw) {
		t.Error("Node's TLS server, given the PFX from the certificate's secret, did not serve its leaf")
	}

	if r.PEM.Cer != sha256Hex(pem.leaf.Raw) || r.PEM.ContentType != "application/x-pem-file" {
		t.Errorf("PEM import: cer is the leaf %v, content type %q", r.PEM.Cer == sha256Hex(pem.leaf.Raw), r.PEM.ContentType)
	}
	if s := r.PEM.Secret; s.KeyType != "ec" || !s.KeyPairs || s.Cert != sha256Hex(pem.leaf.Raw) {
		t.Errorf("PEM secret: key %q pairs with the first certificate %v, which is the leaf %v", s.KeyType, s.KeyPairs, s.Cert == sha256Hex(pem.leaf.Raw))
	}

	c := r.Created
	if !isVersion(c.FirstVersion) || !isVersion(c.SecondVersion) || c.FirstVersion == c.SecondVersion {
		t.Errorf("created versions %q and %q", c.FirstVersion, c.SecondVersion)
	}
	if !slices.Equal(sortedCopy(c.Versions), sortedCopy([]string{c.FirstVersion, c.SecondVersion})) {
		t.Errorf("versions listed %v", c.Versions)
	}
	pol := c.Policy
	if pol.IssuerName != "Self" || pol.Subject != "CN=js.keygate.test" || pol.KeyType != "EC" || pol.KeyCurveName != "P-256" ||
		pol.ValidityInMonths != 6 || pol.ContentType != "application/x-pkcs12" ||
		!slices.Equal(pol.DNSNames, []string{"js.keygate.test", "www.js.keygate.test"}) {
		t.Errorf("policy read back: %+v", pol)
	}
	if c.Served == "" || c.Served != c.Cer {
		t.Error("Node's TLS server, given the created certificate's secret, did not serve that certificate")
	}
	if r.Missing != (jsError{http.StatusNotFound, "CertificateNotFound"}) {
		t.Errorf("missing certificate: %+v, want 404 CertificateNotFound", r.Missing)
	}
	checkJSCertificateLifecycle(t, r, pem)
}

func checkJSCertificateLifecycle(t *testing.T, r jsCertificatesResult, pem jsImport) {
	u := r.Lifecycle.Update
	if !sameJSON(u.Tags, map[string]string{"env": "test"}) {
		t.Errorf("tags after update: %v", u.Tags)
	}
	if u.ValidityInMonths != 12 || len(u.LifetimeActions) != 1 || u.LifetimeActions[0].Action != "AutoRenew" ||
		u.LifetimeActions[0].LifetimePercentage != 80 || u.KeyCurveName != "P-256" {
		t.Errorf("policy after update: %+v (the key's curve must stay)", u)
	}
	if u.Operation != "completed" || !u.OperationDone {
		t.Errorf("operation of a created certificate: %q, done %v", u.Operation, u.OperationDone)
	}
	if !slices.Equal(u.Listed, []string{"js-pem", "js-pfx", "js-self"}) {
		t.Errorf("certificates listed: %v", u.Listed)
	}

	c := r.Lifecycle.Contacts
	if !slices.Equal(c.Set, []string{"ops@keygate.test"}) || !slices.Equal(c.Got, c.Set) || c.AfterDelete != (jsError{http.StatusNotFound, "ContactsNotFound"}) {
		t.Errorf("contacts: %+v", c)
	}

	d := r.Lifecycle.Delete
	if !strings.HasSuffix(d.RecoveryID, "/deletedcertificates/js-pem") || d.GotDeleted != "js-pem" || !slices.Contains(d.Listed, "js-pem") {
		t.Errorf("deleted certificate: %+v", d)
	}
	if d.DeletedOn == 0 || d.ScheduledPurgeDate-d.DeletedOn != 90*24*3600*1000 {
		t.Errorf("deleted on %d, purge scheduled %d: want 90 days apart", d.DeletedOn, d.ScheduledPurgeDate)
	}
	if d.Recovered != "js-pem" || d.BackupSize == 0 || d.AfterPurge != (jsError{http.StatusNotFound, "CertificateNotFound"}) {
		t.Errorf("recover, backup, purge: %+v", d)
	}
	if d.Restored != "js-pem" || d.RestoredCer != sha256Hex(pem.leaf.Raw) {
		t.Errorf("restored %q: the leaf came back %v", d.Restored, d.RestoredCer == sha256Hex(pem.leaf.Raw))
	}

	// The operation poller first reads the certificate being made: Key
	// Vault shows it as a disabled version without cer.
	p := r.Lifecycle.Pending
	if p.Status != "inProgress" || p.IssuerName != "Unknown" || !isVersion(p.Version) || p.Enabled || p.HasCer {
		t.Errorf("certificate being made, as the operation poller saw it: %+v", p)
	}
	if !p.CancellationRequested || p.Removed != "js-pending" || p.AfterDelete != (jsError{http.StatusNotFound, "CertificateNotFound"}) {
		t.Errorf("cancel and delete of the operation: %+v", p)
	}
}

// jsReadResult is what the read scenario reports.
type jsReadResult struct {
	ID, Value string
}

// TestJavaScriptManagedIdentity reads a secret with the JavaScript SDK's
// ManagedIdentityCredential, and with DefaultAzureCredential, through the
// vault's local agent, given only IDENTITY_ENDPOINT and IDENTITY_HEADER.
func TestJavaScriptManagedIdentity(t *testing.T) {
	needNode(t)
	tv := startVault(t, "", func(c *server.Config) { c.AgentListen = "127.0.0.1:0" })
	const value = "read-by-node-through-the-agent"
	if _, err := tv.secrets.SetSecret(ctxT(t), "mi-secret", azsecrets.SetSecretParameters{Value: to.Ptr(value)}, nil); err != nil {
		t.Fatal(err)
	}
	env := append(tv.srv.AgentEnvironment(),
		"NODE_EXTRA_CA_CERTS="+tv.creds.CAFile,
		"KEYGATE_VAULT_URL="+tv.srv.URL(),
		"KEYGATE_SECRET_NAME=mi-secret",
	)
	for _, kind := range []string{"managed", "default"} {
		var r jsReadResult
		decodeJS(t, runNode(t, append(env, "KEYGATE_CREDENTIAL="+kind), "read"), "read", &r)
		if r.Value != sha256Hex([]byte(value)) || !strings.HasPrefix(r.ID, tv.srv.URL()+"/secrets/mi-secret/") {
			t.Errorf("%s credential through the agent: id %q, value is the one set %v", kind, r.ID, r.Value == sha256Hex([]byte(value)))
		}
	}
	tv.mustFindAudit("the local identity's read", func(r audit.Record) bool {
		return r.Operation == "SecretGet" && r.ObjectName == "mi-secret" && r.Status == 200 && r.CallerObjectID != ""
	})
	scanForSecrets(t, tv, []string{value, strings.TrimPrefix(env[1], "IDENTITY_HEADER=")})
}

// TestJavaScriptClientCertificate signs in with the JavaScript SDK's
// ClientCertificateCredential as a service principal registered with a
// certificate (its assertion's x5t#S256 in base64url), from a PEM file
// holding the chain and sending it (x5c), and reads a secret it was
// granted.
func TestJavaScriptClientCertificate(t *testing.T) {
	needNode(t)
	tv := startVault(t, "")
	now := time.Now()
	b := newOutsideCA(t).issue(t, "app.js.example", pki.KeySpec{Type: pki.KeyTypeRSA, Size: 2048}, now.Add(-time.Hour), now.Add(24*time.Hour))
	doc := tv.mustManage(http.StatusCreated, "POST", "/servicePrincipals", map[string]any{
		"displayName":    "node app",
		"keyCredentials": []any{map[string]any{"key": string(pki.CertsPEM(b.Certs[:1]))}},
	})
	clientID, objectID := doc["appId"].(string), doc["id"].(string)
	tv.setPolicy("add", objectID, "get")
	const value = "read-by-node-with-a-certificate"
	if _, err := tv.secrets.SetSecret(ctxT(t), "cert-secret", azsecrets.SetSecretParameters{Value: to.Ptr(value)}, nil); err != nil {
		t.Fatal(err)
	}
	keyAndCert, err := b.EncodePEM() // the key, then leaf, intermediate and root
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(certFile, keyAndCert, 0o600); err != nil {
		t.Fatal(err)
	}

	env := []string{
		"NODE_EXTRA_CA_CERTS=" + tv.creds.CAFile,
		"KEYGATE_VAULT_URL=" + tv.srv.URL(),
		"KEYGATE_CREDENTIAL=certificate",
		"KEYGATE_TENANT_ID=" + tv.creds.TenantID,
		"KEYGATE_CLIENT_ID=" + clientID,
		"KEYGATE_CLIENT_CERTIFICATE=" + certFile,
		"KEYGATE_AUTHORITY_HOST=" + tv.srv.AuthorityHost(),
		"KEYGATE_SECRET_NAME=cert-secret",
		"KEYGATE_SEND_CHAIN=1", // the assertion carries x5c, for subject name and issuer authentication
	}
	var r jsReadResult
	decodeJS(t, runNode(t, env, "read"), "read", &r)
	if r.Value != sha256Hex([]byte(value)) {
		t.Errorf("read with a certificate credential: id %q, value is not the one set", r.ID)
	}
	tv.mustFindAudit("the principal's read", func(r audit.Record) bool {
		return r.Operation == "SecretGet" && r.CallerObjectID == objectID && r.Status == 200
	})
	scanForSecrets(t, tv, []string{value})
}

// TestJavaScriptHostname serves the vault under a DNS name and keeps the
// JavaScript SDK's challenge resource verification on: the challenge's
// resource must be a parent domain of the vault's host. The default vault
// is read at the server's name, a second vault at its own (NAME.DOMAIN).
// (The same client reaching the vault by IP address fails that
// verification in the SDK, before any request: the check is really on.)
func TestJavaScriptHostname(t *testing.T) {
	needNode(t)
	const host = "kv.vault.keygate.test"
	tv := startVault(t, "", func(c *server.Config) { c.Hostname = host })
	tv.http = tv.loopbackClient() // for the management API under the name
	doc := tv.mustManage(http.StatusCreated, "PUT", "/vaults/team", map[string]any{"properties": map[string]any{
		"accessPolicies": []any{map[string]any{"tenantId": tv.creds.TenantID, "objectId": tv.adminObjectID(),
			"permissions": map[string]any{"secrets": []string{"all"}}}},
	}})
	teamURL := doc["properties"].(map[string]any)["vaultUri"].(string)
	if !strings.HasPrefix(teamURL, "https://team.vault.keygate.test:") {
		t.Fatalf("team vault at %s", teamURL)
	}
	values := map[string]string{tv.srv.URL(): "read-by-node-by-name", teamURL: "read-by-node-in-team"}
	for url, value := range values {
		if _, err := tv.secretsAt(url, true).SetSecret(ctxT(t), "named", azsecrets.SetSecretParameters{Value: to.Ptr(value)}, nil); err != nil {
			t.Fatal(err)
		}
	}

	// No resolver here knows keygate.test: Node resolves every name to
	// loopback, as a hosts file entry would.
	env := append(tv.jsSecretEnv(), "KEYGATE_VERIFY_CHALLENGE=1", "KEYGATE_RESOLVE=127.0.0.1",
		"KEYGATE_SECRET_NAME=named", "KEYGATE_OTHER_VAULT_URL="+teamURL)
	out := runNode(t, env, "read", "other")
	for scenario, url := range map[string]string{"read": tv.srv.URL(), "other": teamURL} {
		var r jsReadResult
		decodeJS(t, out, scenario, &r)
		if r.Value != sha256Hex([]byte(values[url])) || !strings.HasPrefix(r.ID, url+"/secrets/named/") {
			t.Errorf("read from %s: id %q, value is the one set there %v", url, r.ID, r.Value == sha256Hex([]byte(values[url])))
		}
	}
}
