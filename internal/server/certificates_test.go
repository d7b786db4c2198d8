package server_test

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/keygate/keygate/internal/manage"
	"github.com/keygate/keygate/internal/pki"
	"github.com/keygate/keygate/internal/server"
)

// outsideCA is a CA made in the test, standing for a CA the vault does
// not run.
type outsideCA struct {
	root, inter *pki.CA
	roots       *x509.CertPool
}

func newOutsideCA(t *testing.T) *outsideCA {
	t.Helper()
	root, err := pki.NewCA("outside root", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("outside intermediate", time.Now(), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root.Cert)
	return &outsideCA{root: root, inter: inter, roots: pool}
}

// issue makes a leaf for host with a key of spec, valid from nbf to exp.
func (ca *outsideCA) issue(t *testing.T, host string, spec pki.KeySpec, nbf, exp time.Time) *pki.Bundle {
	t.Helper()
	key, err := pki.GenerateKey(spec)
	if err != nil {
		t.Fatal(err)
	}
	props := pki.X509Props{Subject: "CN=" + host, DNSNames: []string{host}, EKUs: []string{"1.3.6.1.5.5.7.3.1"},
		KeyUsage: []string{"digitalSignature"}, ValidityMonths: 1}
	tmpl, err := props.Template(nbf)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.NotAfter = exp
	leaf, err := ca.inter.Sign(tmpl, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &pki.Bundle{Key: key, Certs: []*x509.Certificate{leaf, ca.inter.Cert, ca.root.Cert}}
}

func TestImportPFXAndPEM(t *testing.T) {
	tv := startVault(t, "")
	c := tv.certs()
	ca := newOutsideCA(t)
	now := time.Now()
	b := ca.issue(t, "import.example", pki.KeySpec{Type: pki.KeyTypeRSA, Size: 2048}, now.Add(-time.Hour), now.Add(30*24*time.Hour))
	// Chain out of order in every encoding: root before intermediate.
	mixed := []*x509.Certificate{b.Certs[2], b.Certs[1]}
	pfx := func(enc *pkcs12.Encoder, pw string) string {
		der, err := enc.Encode(b.Key, b.Certs[0], mixed, pw)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(der)
	}
	pemText, _ := (&pki.Bundle{Key: b.Key, Certs: []*x509.Certificate{b.Certs[2], b.Certs[0], b.Certs[1]}}).EncodePEM()

	cases := []struct {
		name, value, pwd, contentType string
	}{
		{"pfx-aes-password", pfx(pkcs12.Modern2023, "s3cret"), "s3cret", "application/x-pkcs12"},
		{"pfx-aes-nopassword", pfx(pkcs12.Modern2023, ""), "", "application/x-pkcs12"},
		{"pfx-rc2-password", pfx(pkcs12.LegacyRC2, "s3cret"), "s3cret", "application/x-pkcs12"},
		{"pfx-rc2-nopassword", pfx(pkcs12.LegacyRC2, ""), "", "application/x-pkcs12"},
		{"pfx-3des-password", pfx(pkcs12.LegacyDES, "s3cret"), "s3cret", "application/x-pkcs12"},
		{"pem-any-order", string(pemText), "", "application/x-pem-file"},
		{"pem-sent-as-base64", base64.StdEncoding.EncodeToString(pemText), "", "application/x-pem-file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			params := azcertificates.ImportCertificateParameters{Base64EncodedCertificate: to.Ptr(tc.value)}
			if tc.pwd != "" {
				params.Password = to.Ptr(tc.pwd)
			}
			resp, err := c.ImportCertificate(ctxT(t), tc.name, params, nil)
			if err != nil {
				t.Fatalf("ImportCertificate: %v", err)
			}
			got := resp.Certificate
			if string(got.CER) != string(b.Certs[0].Raw) {
				t.Errorf("cer is not the imported leaf")
			}
			if string(got.X509Thumbprint) != string(pki.Thumbprint(b.Certs[0])) {
				t.Errorf("x5t does not match the leaf")
			}
			version := got.ID.Version()
			if got.KID.Version() != version || got.SID.Version() != version || got.KID.Name() != tc.name {
				t.Errorf("kid %s and sid %s do not share the version %s", *got.KID, *got.SID, version)
			}
			if deref(got.Policy.IssuerParameters.Name) != "Unknown" || deref(got.ContentType) != tc.contentType {
				t.Errorf("policy issuer %q content type %q", deref(got.Policy.IssuerParameters.Name), deref(got.ContentType))
			}
			if !got.Attributes.Expires.Equal(b.Certs[0].NotAfter.Truncate(time.Second)) {
				t.Errorf("exp %v, want the certificate's %v", got.Attributes.Expires, b.Certs[0].NotAfter)
			}

			// The secret holds key and chain, leaf first, whatever order
			// the import had; it serves a verified handshake.
			value, ct := tv.secretOf(t, tc.name, version)
			if ct != tc.contentType {
				t.Errorf("secret content type %q, want %q", ct, tc.contentType)
			}
			tc := tlsCertFromSecret(t, value, ct)
			if len(tc.Certificate) != 3 {
				t.Errorf("secret holds %d certificates, want leaf, intermediate, root", len(tc.Certificate))
			}
			leaf := handshake(t, tc, ca.roots, "import.example")
			if leaf.SerialNumber.Cmp(b.Certs[0].SerialNumber) != 0 {
				t.Errorf("handshake served serial %s", leaf.SerialNumber)
			}
		})
	}

	// Another import makes another version; the first stays.
	first, _ := c.GetCertificate(ctxT(t), "pem-any-order", "", nil)
	second, err := c.ImportCertificate(ctxT(t), "pem-any-order",
		azcertificates.ImportCertificateParameters{Base64EncodedCertificate: to.Ptr(string(pemText))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID.Version() == first.ID.Version() {
		t.Errorf("second import reused version %s", first.ID.Version())
	}
	if versions := listVersions(t, c, "pem-any-order"); len(versions) != 2 {
		t.Errorf("%d versions after two imports", len(versions))
	}
	if logs := tv.logs.String(); strings.Contains(logs, "s3cret") || strings.Contains(logs, "PRIVATE KEY") {
		t.Errorf("a PFX password or private key reached the log")
	}
}

func listVersions(t *testing.T, c *azcertificates.Client, name string) []string {
	t.Helper()
	var out []string
	pager := c.NewListCertificatePropertiesVersionsPager(name, nil)
	for pager.More() {
		page, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			out = append(out, p.ID.Version())
		}
	}
	return out
}

// TestCreateEachKeyTypeAndIssuer creates a certificate of every key type
// and size with Self and with a keygate-ca issuer, waits for each through
// the pending operation, and serves each on a real TLS listener verified
// against its issuer.
func TestCreateEachKeyTypeAndIssuer(t *testing.T) {
	tv := startVault(t, "")
	c := tv.certs()
	tv.createIssuer(t, "corp-ca")
	specs := []pki.KeySpec{
		{Type: pki.KeyTypeRSA, Size: 2048}, {Type: pki.KeyTypeRSA, Size: 3072}, {Type: pki.KeyTypeRSA, Size: 4096},
		{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, {Type: pki.KeyTypeEC, Curve: pki.CurveP384}, {Type: pki.KeyTypeEC, Curve: pki.CurveP521},
	}
	type made struct {
		name, issuer, host string
		spec               pki.KeySpec
	}
	var all []made
	for _, iss := range []string{"Self", "corp-ca"} {
		for i, spec := range specs {
			name := strings.ToLower(iss) + "-" + strings.NewReplacer(" ", "-").Replace(strings.ToLower(spec.String()))
			contentType := "application/x-pkcs12"
			if i%2 == 1 {
				contentType = "application/x-pem-file"
			}
			m := made{name: name, issuer: iss, host: name + ".example", spec: spec}
			op, err := c.CreateCertificate(ctxT(t), name, azcertificates.CreateCertificateParameters{
				CertificatePolicy: certPolicy(spec, iss, m.host, contentType),
			}, nil)
			if err != nil {
				t.Fatalf("CreateCertificate(%s): %v", name, err)
			}
			if deref(op.Status) != "inProgress" || !strings.HasSuffix(string(*op.ID), "/certificates/"+name+"/pending") {
				t.Errorf("create answered status %q id %v", deref(op.Status), op.ID)
			}
			all = append(all, m)
		}
	}
	roots := map[string]*x509.CertPool{"corp-ca": tv.issuerRoots(t, "corp-ca")}
	for _, m := range all {
		t.Run(m.name, func(t *testing.T) {
			op := waitOperation(t, c, m.name, notInProgress)
			if deref(op.Status) != "completed" || op.Target == nil {
				t.Fatalf("operation ended %q: %v", deref(op.Status), op.Error)
			}
			got, err := c.GetCertificate(ctxT(t), m.name, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(*op.Target, got.ID.Version()) {
				t.Errorf("target %s is not the new version %s", *op.Target, got.ID.Version())
			}
			leaf, err := x509.ParseCertificate(got.CER)
			if err != nil {
				t.Fatal(err)
			}
			if spec, _ := pki.SpecOf(leaf.PublicKey); spec != m.spec {
				t.Errorf("key is %s, want %s", spec, m.spec)
			}
			value, ct := tv.secretOf(t, m.name, got.ID.Version())
			pool := roots[m.issuer]
			if pool == nil { // self-signed: the certificate is its own root
				pool = x509.NewCertPool()
				pool.AddCert(leaf)
			}
			served := handshake(t, tlsCertFromSecret(t, value, ct), pool, m.host)
			if served.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
				t.Errorf("handshake served serial %s, want %s", served.SerialNumber, leaf.SerialNumber)
			}
			tv.checkJWK(t, m.name, got.ID.Version(), leaf)
		})
	}
}

// checkJWK reads /keys/{name}/{version} and compares it with the leaf's
// public key.
func (tv *testVault) checkJWK(t *testing.T, name, version string, leaf *x509.Certificate) {
	t.Helper()
	var kb struct {
		Key     pki.JWK `json:"key"`
		Managed bool    `json:"managed"`
	}
	if st := tv.rawJSON(t, "GET", "/keys/"+name+"/"+version+"?api-version=2025-07-01", "", &kb); st != http.StatusOK {
		t.Fatalf("GET key: %d", st)
	}
	want, _ := pki.PublicJWK(leaf.PublicKey)
	want.KID = tv.srv.URL() + "/keys/" + name + "/" + version
	if kb.Key.KID != want.KID || kb.Key.N != want.N || kb.Key.X != want.X || kb.Key.CRV != want.CRV || !kb.Managed {
		t.Errorf("key = %+v, want %+v", kb.Key, want)
	}
}

func TestMergeWithOutsideCA(t *testing.T) {
	tv := startVault(t, "")
	c := tv.certs()
	ca := newOutsideCA(t)
	pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, "Unknown", "merge.example", "application/x-pem-file")
	if _, err := c.CreateCertificate(ctxT(t), "merged", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
		t.Fatal(err)
	}
	op := waitOperation(t, c, "merged", func(op azcertificates.CertificateOperation) bool { return len(op.CSR) > 0 })
	if deref(op.Status) != "inProgress" {
		t.Errorf("status %q while waiting for the merge", deref(op.Status))
	}

	// The outside CA signs the CSR.
	csr, err := x509.ParseCertificateRequest(op.CSR)
	if err != nil || csr.CheckSignature() != nil {
		t.Fatalf("CSR: %v", err)
	}
	if csr.Subject.CommonName != "merge.example" || len(csr.DNSNames) != 1 {
		t.Errorf("CSR asks for %v %v", csr.Subject, csr.DNSNames)
	}
	tmpl, _ := (&pki.X509Props{Subject: "CN=merge.example", DNSNames: csr.DNSNames, ValidityMonths: 1}).Template(time.Now().Add(-time.Minute))
	leaf, err := ca.inter.Sign(tmpl, csr.PublicKey)
	if err != nil {
		t.Fatal(err)
	}

	merged, err := c.MergeCertificate(ctxT(t), "merged", azcertificates.MergeCertificateParameters{
		X509Certificates: [][]byte{leaf.Raw, ca.inter.Cert.Raw},
	}, nil)
	if err != nil {
		t.Fatalf("MergeCertificate: %v", err)
	}
	if string(merged.CER) != string(leaf.Raw) {
		t.Errorf("merged cer is not the signed leaf")
	}
	op = waitOperation(t, c, "merged", notInProgress)
	if deref(op.Status) != "completed" {
		t.Errorf("operation after merge: %q", deref(op.Status))
	}
	value, ct := tv.secretOf(t, "merged", merged.ID.Version())
	served := handshake(t, tlsCertFromSecret(t, value, ct), ca.roots, "merge.example")
	if served.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("served serial %s", served.SerialNumber)
	}
}

// TestRenewalByDrivenClock moves the vault's clock to where the policy's
// AutoRenew falls due: a new version with a new serial appears, and the
// old version and its secret stay readable.
func TestRenewalByDrivenClock(t *testing.T) {
	tv := startVault(t, "", func(c *server.Config) { c.OpsListen = "127.0.0.1:0" })
	c := tv.certs()
	tv.createIssuer(t, "renew-ca")
	for _, iss := range []string{"Self", "renew-ca"} {
		pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, iss, "renew.example", "application/x-pkcs12")
		pol.LifetimeActions = []*azcertificates.LifetimeAction{{
			Action:  &azcertificates.LifetimeActionType{ActionType: to.Ptr(azcertificates.CertificatePolicyActionAutoRenew)},
			Trigger: &azcertificates.LifetimeActionTrigger{DaysBeforeExpiry: to.Ptr(int32(30))},
		}}
		name := "renew-" + strings.ToLower(iss)
		if _, err := c.CreateCertificate(ctxT(t), name, azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
			t.Fatal(err)
		}
		waitOperation(t, c, name, notInProgress)
	}
	old := map[string]azcertificates.Certificate{}
	for _, name := range []string{"renew-self", "renew-renew-ca"} {
		got, err := c.GetCertificate(ctxT(t), name, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		old[name] = got.Certificate
	}

	// Not due yet: nothing happens.
	tv.clock.Advance(300 * 24 * time.Hour)
	tv.srv.RunCertificateJobs(ctxLong(t))
	tv.connect()
	c = tv.certs()
	for name := range old {
		if v := listVersions(t, c, name); len(v) != 1 {
			t.Errorf("%s renewed %d days early: %d versions", name, 65-30, len(v))
		}
	}

	// Due: 30 days before expiry of a 12-month certificate.
	tv.clock.Advance(40 * 24 * time.Hour)
	tv.srv.RunCertificateJobs(ctxLong(t))
	tv.connect()
	c = tv.certs()
	for name, before := range old {
		now, err := c.GetCertificate(ctxT(t), name, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if now.ID.Version() == before.ID.Version() {
			t.Fatalf("%s was not renewed", name)
		}
		oldLeaf, _ := x509.ParseCertificate(before.CER)
		newLeaf, _ := x509.ParseCertificate(now.CER)
		if oldLeaf.SerialNumber.Cmp(newLeaf.SerialNumber) == 0 {
			t.Errorf("%s renewed with the same serial", name)
		}
		if !newLeaf.NotAfter.After(oldLeaf.NotAfter) {
			t.Errorf("%s renewed to expire %v, not after %v", name, newLeaf.NotAfter, oldLeaf.NotAfter)
		}
		// The old version and its secret are still there.
		if _, err := c.GetCertificate(ctxT(t), name, before.ID.Version(), nil); err != nil {
			t.Errorf("old version of %s: %v", name, err)
		}
		value, ct := tv.secretOf(t, name, before.ID.Version())
		if got := tlsCertFromSecret(t, value, ct); got.Leaf.SerialNumber.Cmp(oldLeaf.SerialNumber) != 0 {
			t.Errorf("old secret of %s holds serial %s", name, got.Leaf.SerialNumber)
		}
		// A second pass does not renew again.
		tv.srv.RunCertificateJobs(ctxLong(t))
		if v := listVersions(t, c, name); len(v) != 2 {
			t.Errorf("%s has %d versions after renewal, want 2", name, len(v))
		}
	}
	if _, body := tv.ops(t, "/metrics"); !strings.Contains(body, `keygate_vault_certificate_jobs_total{kind="renew",result="succeeded"} 2`) {
		t.Errorf("the metrics do not count the two renewals:\n%s", grepLines(body, "keygate_vault_certificate_jobs"))
	}
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

func TestPolicyUpdate(t *testing.T) {
	tv := startVault(t, "")
	c := tv.certs()
	pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeRSA, Size: 2048}, "Self", "before.example", "application/x-pkcs12")
	if _, err := c.CreateCertificate(ctxT(t), "evolving", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
		t.Fatal(err)
	}
	waitOperation(t, c, "evolving", notInProgress)

	upd, err := c.UpdateCertificatePolicy(ctxT(t), "evolving", azcertificates.CertificatePolicy{
		KeyProperties: &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeEC), Curve: to.Ptr(azcertificates.CurveNameP384)},
		X509CertificateProperties: &azcertificates.X509CertificateProperties{
			Subject:                 to.Ptr("CN=after.example, O=Example"),
			SubjectAlternativeNames: &azcertificates.SubjectAlternativeNames{DNSNames: []*string{to.Ptr("after.example")}},
			ValidityInMonths:        to.Ptr(int32(3)),
		},
		SecretProperties: &azcertificates.SecretProperties{ContentType: to.Ptr("application/x-pem-file")},
	}, nil)
	if err != nil {
		t.Fatalf("UpdateCertificatePolicy: %v", err)
	}
	if *upd.KeyProperties.KeyType != "EC" || *upd.KeyProperties.Curve != "P-384" || upd.KeyProperties.KeySize != nil ||
		*upd.X509CertificateProperties.ValidityInMonths != 3 || deref(upd.IssuerParameters.Name) != "Self" {
		t.Errorf("updated policy = key %+v x509 %+v", *upd.KeyProperties, *upd.X509CertificateProperties)
	}
	got, err := c.GetCertificatePolicy(ctxT(t), "evolving", nil)
	if err != nil || deref(got.X509CertificateProperties.Subject) != "CN=after.example, O=Example" {
		t.Fatalf("GetCertificatePolicy = %v, %v", got.X509CertificateProperties, err)
	}

	// The next version follows the new policy (create without a policy
	// uses the certificate's).
	if _, err := c.CreateCertificate(ctxT(t), "evolving", azcertificates.CreateCertificateParameters{}, nil); err != nil {
		t.Fatalf("create with the stored policy: %v", err)
	}
	waitOperation(t, c, "evolving", notInProgress)
	cur, _ := c.GetCertificate(ctxT(t), "evolving", "", nil)
	leaf, _ := x509.ParseCertificate(cur.CER)
	if spec, _ := pki.SpecOf(leaf.PublicKey); spec.Curve != pki.CurveP384 || leaf.Subject.CommonName != "after.example" {
		t.Errorf("new version: key %s subject %s", spec, leaf.Subject)
	}
	if deref(cur.ContentType) != "application/x-pem-file" {
		t.Errorf("new version content type %q", deref(cur.ContentType))
	}
}

func TestPendingCancelAndDelete(t *testing.T) {
	tv := startVault(t, "")
	c := tv.certs()
	pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeRSA, Size: 2048}, "Unknown", "pending.example", "application/x-pkcs12")
	if _, err := c.CreateCertificate(ctxT(t), "waiting", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
		t.Fatal(err)
	}
	waitOperation(t, c, "waiting", func(op azcertificates.CertificateOperation) bool { return len(op.CSR) > 0 })

	// A second create while one is in progress is refused.
	_, err := c.CreateCertificate(ctxT(t), "waiting", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil)
	if statusOf(err) != http.StatusConflict {
		t.Errorf("second create: %v, want 409", err)
	}

	// Cancel: the operation says so and a merge is refused.
	cancelled, err := c.UpdateCertificateOperation(ctxT(t), "waiting",
		azcertificates.UpdateCertificateOperationParameter{CancellationRequested: to.Ptr(true)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !*cancelled.CancellationRequested || deref(cancelled.Status) != "cancelled" {
		t.Errorf("after cancel: requested=%v status=%q", *cancelled.CancellationRequested, deref(cancelled.Status))
	}
	ca := newOutsideCA(t)
	b := ca.issue(t, "pending.example", pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, time.Now(), time.Now().Add(time.Hour))
	_, err = c.MergeCertificate(ctxT(t), "waiting", azcertificates.MergeCertificateParameters{X509Certificates: [][]byte{b.Certs[0].Raw}}, nil)
	if statusOf(err) != http.StatusConflict {
		t.Errorf("merge after cancel: %v, want 409", err)
	}

	// Delete: the operation and the certificate that never got a version
	// are gone.
	deleted, err := c.DeleteCertificateOperation(ctxT(t), "waiting", nil)
	if err != nil || deref(deleted.Status) != "cancelled" {
		t.Fatalf("DeleteCertificateOperation = %v, %v", deleted.Status, err)
	}
	if _, err := c.GetCertificateOperation(ctxT(t), "waiting", nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("operation after delete: %v, want 404", err)
	}
	if _, err := c.GetCertificate(ctxT(t), "waiting", "", nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("certificate after deleting its only operation: %v, want 404", err)
	}

	// A Self creation cancelled before it completes makes no version.
	slow := certPolicy(pki.KeySpec{Type: pki.KeyTypeRSA, Size: 4096}, "Self", "slow.example", "application/x-pkcs12")
	if _, err := c.CreateCertificate(ctxT(t), "slow", azcertificates.CreateCertificateParameters{CertificatePolicy: slow}, nil); err != nil {
		t.Fatal(err)
	}
	op, err := c.UpdateCertificateOperation(ctxT(t), "slow",
		azcertificates.UpdateCertificateOperationParameter{CancellationRequested: to.Ptr(true)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if deref(op.Status) == "cancelled" {
		tv.srv.RunCertificateJobs(ctxLong(t))
		if _, err := c.GetCertificate(ctxT(t), "slow", "", nil); statusOf(err) != http.StatusNotFound {
			t.Errorf("cancelled creation made a version: %v", err)
		}
	} else if deref(op.Status) != "completed" {
		t.Errorf("cancel answered %q", deref(op.Status))
	}
}

func TestDeleteRecoverPurgeTakeTheSecret(t *testing.T) {
	tv := startVault(t, "")
	c := tv.certs()
	pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, "Self", "gone.example", "application/x-pkcs12")
	if _, err := c.CreateCertificate(ctxT(t), "gone", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
		t.Fatal(err)
	}
	waitOperation(t, c, "gone", notInProgress)

	// The secret cannot be changed or deleted through /secrets.
	_, err := tv.secrets.SetSecret(ctxT(t), "gone", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil)
	if statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "SecretManagedByKeyVault") {
		t.Errorf("set on a certificate's secret: %v", err)
	}
	if _, err := tv.secrets.DeleteSecret(ctxT(t), "gone", nil); statusOf(err) != http.StatusForbidden {
		t.Errorf("delete of a certificate's secret: %v", err)
	}

	del, err := c.DeleteCertificate(ctxT(t), "gone", nil)
	if err != nil || del.RecoveryID == nil || del.ScheduledPurgeDate == nil {
		t.Fatalf("DeleteCertificate = %+v, %v", del, err)
	}
	if _, err := tv.secrets.GetSecret(ctxT(t), "gone", "", nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("secret of a deleted certificate: %v", err)
	}
	if st := tv.rawJSON(t, "GET", "/keys/gone/?api-version=2025-07-01", "", nil); st != http.StatusNotFound {
		t.Errorf("key of a deleted certificate: %d", st)
	}
	if _, err := c.RecoverDeletedCertificate(ctxT(t), "gone", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tv.secrets.GetSecret(ctxT(t), "gone", "", nil); err != nil {
		t.Errorf("secret after recover: %v", err)
	}

	if _, err := c.DeleteCertificate(ctxT(t), "gone", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedCertificate(ctxT(t), "gone", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tv.secrets.GetDeletedSecret(ctxT(t), "gone", nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("deleted secret after purge: %v", err)
	}
	if _, err := c.GetDeletedCertificate(ctxT(t), "gone", nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("deleted certificate after purge: %v", err)
	}
}

func TestBackupRestoreAndContactsAndIssuers(t *testing.T) {
	tv := startVault(t, "")
	c := tv.certs()
	tv.createIssuer(t, "team-ca")
	pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, "team-ca", "kept.example", "application/x-pem-file")
	if _, err := c.CreateCertificate(ctxT(t), "kept", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
		t.Fatal(err)
	}
	waitOperation(t, c, "kept", notInProgress)
	before, _ := c.GetCertificate(ctxT(t), "kept", "", nil)

	backup, err := c.BackupCertificate(ctxT(t), "kept", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.DeleteCertificate(ctxT(t), "kept", nil)
	if _, err := c.PurgeDeletedCertificate(ctxT(t), "kept", nil); err != nil {
		t.Fatal(err)
	}
	restored, err := c.RestoreCertificate(ctxT(t), azcertificates.RestoreCertificateParameters{CertificateBackup: backup.Value}, nil)
	if err != nil {
		t.Fatalf("RestoreCertificate: %v", err)
	}
	if restored.ID.Version() != before.ID.Version() || string(restored.CER) != string(before.CER) {
		t.Errorf("restored %s, want %s", *restored.ID, *before.ID)
	}
	value, ct := tv.secretOf(t, "kept", before.ID.Version())
	handshake(t, tlsCertFromSecret(t, value, ct), tv.issuerRoots(t, "team-ca"), "kept.example")

	// Contacts.
	if _, err := c.GetContacts(ctxT(t), nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("contacts before any: %v", err)
	}
	set, err := c.SetContacts(ctxT(t), azcertificates.Contacts{ContactList: []*azcertificates.Contact{
		{Email: to.Ptr("ops@example.com"), Name: to.Ptr("Ops")}}}, nil)
	if err != nil || len(set.ContactList) != 1 {
		t.Fatalf("SetContacts = %v, %v", set, err)
	}
	got, err := c.GetContacts(ctxT(t), nil)
	if err != nil || deref(got.ContactList[0].Email) != "ops@example.com" {
		t.Errorf("GetContacts = %v, %v", got, err)
	}
	if _, err := c.DeleteContacts(ctxT(t), nil); err != nil {
		t.Error(err)
	}

	// Issuers: list, get, update, delete.
	pager := c.NewListIssuerPropertiesPager(nil)
	page, err := pager.NextPage(ctxT(t))
	if err != nil || len(page.Value) != 1 || deref(page.Value[0].Provider) != "keygate-ca" {
		t.Fatalf("issuers = %v, %v", page.Value, err)
	}
	upd, err := c.UpdateIssuer(ctxT(t), "team-ca", azcertificates.UpdateIssuerParameters{
		Credentials: &azcertificates.IssuerCredentials{AccountID: to.Ptr("acct"), Password: to.Ptr("hidden-pw")},
	}, nil)
	if err != nil || deref(upd.Credentials.AccountID) != "acct" || upd.Credentials.Password != nil {
		t.Errorf("UpdateIssuer = %+v, %v", upd.Credentials, err)
	}
	if strings.Contains(tv.logs.String(), "hidden-pw") {
		t.Errorf("issuer password reached the log")
	}
	if _, err := c.DeleteIssuer(ctxT(t), "team-ca", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetIssuer(ctxT(t), "team-ca", nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("issuer after delete: %v", err)
	}
}

// TestCertificatePermissions: certificate operations need certificate
// permissions, and the private key through the secret needs secrets get.
func TestCertificatePermissions(t *testing.T) {
	tv := startVault(t, "")
	c := tv.certs()
	pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, "Self", "perm.example", "application/x-pkcs12")
	if _, err := c.CreateCertificate(ctxT(t), "guarded", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
		t.Fatal(err)
	}
	waitOperation(t, c, "guarded", notInProgress)
	sp, secret, err := tv.srv.Authority().CreateServicePrincipal(ctxT(t), "cert-reader", nil)
	if err != nil {
		t.Fatal(err)
	}
	creds := tv.creds
	creds.ClientID, creds.ClientSecret = sp.ClientID, secret
	reader, err := creds.Certificates(tv.srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	readerSecrets := tv.clientFor(sp.ClientID, secret)

	tv.setPermissions(t, sp.ObjectID, map[string][]string{"certificates": {"get"}})
	if _, err := reader.GetCertificate(ctxT(t), "guarded", "", nil); err != nil {
		t.Errorf("get with certificates get: %v", err)
	}
	if _, err := readerSecrets.GetSecret(ctxT(t), "guarded", "", nil); statusOf(err) != http.StatusForbidden {
		t.Errorf("secret without secrets get: %v", err)
	}
	_, err = reader.DeleteCertificate(ctxT(t), "guarded", nil)
	if statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "certificates delete permission") {
		t.Errorf("delete with get only: %v", err)
	}
	if _, err := reader.NewListIssuerPropertiesPager(nil).NextPage(ctxT(t)); statusOf(err) != http.StatusForbidden {
		t.Errorf("list issuers without listissuers: %v", err)
	}

	tv.setPermissions(t, sp.ObjectID, map[string][]string{"certificates": {"manageissuers"}, "secrets": {"get"}})
	if _, err := readerSecrets.GetSecret(ctxT(t), "guarded", "", nil); err != nil {
		t.Errorf("secret with secrets get: %v", err)
	}
	if _, err := reader.NewListIssuerPropertiesPager(nil).NextPage(ctxT(t)); err != nil {
		t.Errorf("list issuers with manageissuers: %v", err)
	}
}

// setPermissions replaces an object id's access policy of the default
// vault with perms (by kind: secrets, certificates, keys).
func (tv *testVault) setPermissions(t *testing.T, objectID string, perms map[string][]string) {
	t.Helper()
	tok, err := tv.creds.Token(ctxT(t), tv.http, manage.Audience+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"properties": map[string]any{"accessPolicies": []any{map[string]any{
		"tenantId": tv.creds.TenantID, "objectId": objectID, "permissions": perms,
	}}}})
	if resp, out := tv.do("PUT", "/management/vaults/default/accessPolicies/add", tok, string(body)); resp.StatusCode != http.StatusOK {
		t.Fatalf("set policy: %d %s", resp.StatusCode, out)
	}
}

// TestExportableReuseKeyAndDisable covers the key properties: a key that
// is not exportable stays out of the secret; reuse_key renews with the
// same key; disabling a version disables its secret.
func TestExportableReuseKeyAndDisable(t *testing.T) {
	tv := startVault(t, "")
	c := tv.certs()
	for _, ct := range []string{"application/x-pkcs12", "application/x-pem-file"} {
		name := "sealed-" + strings.TrimPrefix(ct, "application/x-")
		pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, "Self", "sealed.example", ct)
		pol.KeyProperties.Exportable = to.Ptr(false)
		pol.KeyProperties.ReuseKey = to.Ptr(true)
		if _, err := c.CreateCertificate(ctxT(t), name, azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
			t.Fatal(err)
		}
		waitOperation(t, c, name, notInProgress)
		first, _ := c.GetCertificate(ctxT(t), name, "", nil)
		value, _ := tv.secretOf(t, name, "")
		if ct == "application/x-pem-file" {
			if strings.Contains(value, "PRIVATE KEY") || !strings.Contains(value, "BEGIN CERTIFICATE") {
				t.Errorf("PEM secret of a non-exportable key: %.80s", value)
			}
		} else {
			der, _ := base64.StdEncoding.DecodeString(value)
			if _, _, _, err := pkcs12.DecodeChain(der, ""); err == nil || !strings.Contains(err.Error(), "private key missing") {
				t.Errorf("PFX secret of a non-exportable key opens with a key: %v", err)
			}
			if certs, err := pkcs12.DecodeTrustStore(der, ""); err != nil || len(certs) != 1 {
				t.Errorf("PFX secret holds %d certificates: %v", len(certs), err)
			}
		}

		// A new version with reuse_key has the same public key.
		if _, err := c.CreateCertificate(ctxT(t), name, azcertificates.CreateCertificateParameters{}, nil); err != nil {
			t.Fatal(err)
		}
		waitOperation(t, c, name, notInProgress)
		second, _ := c.GetCertificate(ctxT(t), name, "", nil)
		a, _ := x509.ParseCertificate(first.CER)
		b, _ := x509.ParseCertificate(second.CER)
		if second.ID.Version() == first.ID.Version() || a.SerialNumber.Cmp(b.SerialNumber) == 0 {
			t.Fatalf("no new version")
		}
		if !a.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(b.PublicKey) {
			t.Errorf("reuse_key made a new key")
		}
	}

	// Disabling the current version disables its secret too.
	upd, err := c.UpdateCertificate(ctxT(t), "sealed-pkcs12", "", azcertificates.UpdateCertificateParameters{
		CertificateAttributes: &azcertificates.CertificateAttributes{Enabled: to.Ptr(false)},
		Tags:                  map[string]*string{"state": to.Ptr("off")},
	}, nil)
	if err != nil || *upd.Attributes.Enabled || deref(upd.Tags["state"]) != "off" {
		t.Fatalf("UpdateCertificate = %+v, %v", upd.Attributes, err)
	}
	if _, err := tv.secrets.GetSecret(ctxT(t), "sealed-pkcs12", "", nil); statusOf(err) != http.StatusForbidden {
		t.Errorf("secret of a disabled certificate: %v, want 403", err)
	}
}

// TestCertificateListPaging follows nextLink through certificates and
// versions one at a time.
func TestCertificateListPaging(t *testing.T) {
	tv := startVault(t, "")
	ca := newOutsideCA(t)
	now := time.Now()
	for _, name := range []string{"page-a", "page-b", "page-c", "page-c"} {
		b := ca.issue(t, name+".example", pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, now.Add(-time.Hour), now.Add(time.Hour))
		p, _ := b.EncodePEM()
		if st := tv.rawJSON(t, "POST", "/certificates/"+name+"/import"+cq, importBody(string(p), ""), nil); st != http.StatusOK {
			t.Fatalf("import %s: %d", name, st)
		}
	}
	follow := func(path string) []string {
		var ids []string
		next := tv.srv.URL() + path
		for range 10 {
			var page struct {
				Value    []struct{ ID string }
				NextLink string
			}
			if st := tv.rawJSON(t, "GET", strings.TrimPrefix(next, tv.srv.URL()), "", &page); st != http.StatusOK {
				t.Fatalf("GET %s: %d", next, st)
			}
			if len(page.Value) > 1 {
				t.Errorf("page of %d items with maxresults=1", len(page.Value))
			}
			for _, v := range page.Value {
				ids = append(ids, v.ID)
			}
			if next = page.NextLink; next == "" {
				break
			}
		}
		return ids
	}
	if ids := follow("/certificates" + cq + "&maxresults=1"); len(ids) != 3 || !strings.HasSuffix(ids[2], "/certificates/page-c") {
		t.Errorf("certificates paged as %v", ids)
	}
	if ids := follow("/certificates/page-c/versions" + cq + "&maxresults=1"); len(ids) != 2 || ids[0] == ids[1] {
		t.Errorf("versions paged as %v", ids)
	}
}

// TestListIncludePending lists certificates whose first version is still
// being made only when includePending asks for them, through the SDK and
// across pages, and refuses a value that is not a boolean.
func TestListIncludePending(t *testing.T) {
	tv := startVault(t, "")
	c := tv.certs()
	ca := newOutsideCA(t)
	b := ca.issue(t, "done.example", pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	p, _ := b.EncodePEM()
	if st := tv.rawJSON(t, "POST", "/certificates/done/import"+cq, importBody(string(p), ""), nil); st != http.StatusOK {
		t.Fatalf("import: %d", st)
	}
	pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, "Unknown", "waiting.example", "application/x-pem-file")
	for _, name := range []string{"waiting-1", "waiting-2"} {
		params := azcertificates.CreateCertificateParameters{CertificatePolicy: pol, Tags: map[string]*string{"team": to.Ptr("edge")}}
		if _, err := c.CreateCertificate(ctxT(t), name, params, nil); err != nil {
			t.Fatal(err)
		}
	}

	list := func(pending *bool) map[string]*azcertificates.CertificateProperties {
		got := map[string]*azcertificates.CertificateProperties{}
		pager := c.NewListCertificatePropertiesPager(&azcertificates.ListCertificatePropertiesOptions{IncludePending: pending})
		for pager.More() {
			page, err := pager.NextPage(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, item := range page.Value {
				got[item.ID.Name()] = item
			}
		}
		return got
	}
	for _, pending := range []*bool{nil, to.Ptr(false)} {
		if got := list(pending); len(got) != 1 || got["done"] == nil {
			t.Errorf("includePending=%v listed %v, want only done", pending, slices.Collect(maps.Keys(got)))
		}
	}
	got := list(to.Ptr(true))
	if len(got) != 3 {
		t.Fatalf("includePending=true listed %v, want done and both waiting", slices.Collect(maps.Keys(got)))
	}
	w := got["waiting-1"]
	if w == nil || w.Attributes == nil || w.Attributes.Enabled == nil || *w.Attributes.Enabled || deref(w.Tags["team"]) != "edge" || len(w.X509Thumbprint) != 0 {
		t.Errorf("pending item = %+v, want disabled, tagged team=edge, no thumbprint", w)
	}

	// The nextLink keeps includePending, or the second page would drop
	// what the first promised.
	var ids []string
	next := "/certificates" + cq + "&maxresults=1&includePending=true"
	for next != "" && len(ids) < 10 {
		var page struct {
			Value    []struct{ ID string }
			NextLink string
		}
		if st := tv.rawJSON(t, "GET", next, "", &page); st != http.StatusOK {
			t.Fatalf("GET %s: %d", next, st)
		}
		for _, v := range page.Value {
			ids = append(ids, v.ID)
		}
		next = strings.TrimPrefix(page.NextLink, tv.srv.URL())
	}
	if len(ids) != 3 {
		t.Errorf("paged with includePending as %v, want 3 certificates", ids)
	}

	var e struct{ Error struct{ Message string } }
	resp, body := tv.do("GET", "/certificates"+cq+"&includePending=maybe", tv.adminToken(), "")
	if json.Unmarshal([]byte(body), &e); resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error.Message, "includePending") {
		t.Errorf("includePending=maybe: %d %s, want 400 naming includePending", resp.StatusCode, body)
	}
}

// TestRenewalAfterRestart: the scheduler keeps no state of its own, so a
// renewal that fell due while the vault was down happens after it starts.
func TestRenewalAfterRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	tv := startVault(t, dir)
	c := tv.certs()
	pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, "Self", "restart.example", "application/x-pkcs12")
	if _, err := c.CreateCertificate(ctxT(t), "restarted", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
		t.Fatal(err)
	}
	waitOperation(t, c, "restarted", notInProgress)
	tv.stop()

	tv2 := startVault(t, dir)
	tv2.clock.Advance(330 * 24 * time.Hour) // past the default 80% of the lifetime
	tv2.srv.RunCertificateJobs(ctxLong(t))
	tv2.connect()
	// The scheduler's own pass may hold the job's lease when the one
	// above runs, and then renews a moment later.
	var versions []string
	for range 100 {
		if versions = listVersions(t, tv2.certs(), "restarted"); len(versions) >= 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(versions) != 2 {
		t.Errorf("%d versions after a restart past the renewal point, want 2", len(versions))
	}
	if strings.Contains(tv.logs.String()+tv2.logs.String(), "BEGIN PRIVATE KEY") {
		t.Errorf("a private key reached the log")
	}
}
