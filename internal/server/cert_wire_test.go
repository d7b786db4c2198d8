package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"

	"github.com/keygate/keygate/internal/pki"
)

// TestCertificateBeingMadeReadsAsDisabledVersion reads the latest version
// of a certificate whose first version an outside CA has yet to sign. Key
// Vault answers with that version, disabled, with its policy and a link
// to the operation but no certificate, key or secret; the JavaScript SDK's
// getCertificateOperation reads it before the operation and fails on a
// 404. A cancelled creation still makes no version.
func TestCertificateBeingMadeReadsAsDisabledVersion(t *testing.T) {
	tv := startVault(t, "")
	c := tv.certs()
	pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, "Unknown", "made.example", "application/x-pem-file")
	created, err := c.CreateCertificate(ctxT(t), "made", azcertificates.CreateCertificateParameters{
		CertificatePolicy: pol, Tags: map[string]*string{"team": to.Ptr("web")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}

	got, err := c.GetCertificate(ctxT(t), "made", "", nil)
	if err != nil {
		t.Fatalf("GetCertificate of the certificate being made: %v", err)
	}
	if v := got.ID.Version(); !isVersion(v) || got.ID.Name() != "made" {
		t.Errorf("id %s: want the version being made", *got.ID)
	}
	if got.Attributes == nil || got.Attributes.Enabled == nil || *got.Attributes.Enabled || got.CER != nil || got.X509Thumbprint != nil {
		t.Errorf("the version being made must be disabled and have no certificate: %+v", got.Attributes)
	}
	if got.KID != nil || got.SID != nil {
		t.Errorf("kid %v, sid %v: the version being made has no key or secret yet", got.KID, got.SID)
	}
	if deref(got.Policy.IssuerParameters.Name) != "Unknown" || deref(got.ContentType) != "application/x-pem-file" || deref(got.Tags["team"]) != "web" {
		t.Errorf("policy issuer %q, content type %q, tags %v", deref(got.Policy.IssuerParameters.Name), deref(got.ContentType), got.Tags)
	}
	var raw map[string]any
	if status := tv.rawJSON(t, "GET", "/certificates/made/?api-version=7.6", "", &raw); status != http.StatusOK {
		t.Fatalf("raw GET: %d", status)
	}
	if p, _ := raw["pending"].(map[string]any); p == nil || !strings.HasSuffix(p["id"].(string), "/certificates/made/pending") {
		t.Errorf("bundle's pending = %v, want the operation's id", raw["pending"])
	}
	if _, ok := raw["cer"]; ok {
		t.Error("the version being made has a cer")
	}

	// Only the latest is shown so: the version itself is not yet stored,
	// nor is it listed without includePending.
	if _, err := c.GetCertificate(ctxT(t), "made", got.ID.Version(), nil); statusOf(err) != http.StatusNotFound {
		t.Errorf("GetCertificate by the pending version: %v, want 404", err)
	}
	if created.ID == nil || !strings.HasSuffix(string(*created.ID), "/certificates/made/pending") {
		t.Errorf("create answered id %v", created.ID)
	}

	// Cancelled: no version, as before.
	if _, err := c.UpdateCertificateOperation(ctxT(t), "made",
		azcertificates.UpdateCertificateOperationParameter{CancellationRequested: to.Ptr(true)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetCertificate(ctxT(t), "made", "", nil); statusOf(err) != http.StatusNotFound || codeOf(err) != "CertificateNotFound" {
		t.Errorf("GetCertificate after the creation was cancelled: %v, want 404 CertificateNotFound", err)
	}
}

// TestNotFoundCodesOfContactsAndOperations checks the codes Key Vault
// gives a missing contact list and a missing pending operation, which
// are not CertificateNotFound.
func TestNotFoundCodesOfContactsAndOperations(t *testing.T) {
	tv := startVault(t, "")
	c := tv.certs()
	if _, err := c.GetContacts(ctxT(t), nil); statusOf(err) != http.StatusNotFound || codeOf(err) != "ContactsNotFound" {
		t.Errorf("contacts never set: %v, want 404 ContactsNotFound", err)
	}
	if _, err := c.DeleteContacts(ctxT(t), nil); statusOf(err) != http.StatusNotFound || codeOf(err) != "ContactsNotFound" {
		t.Errorf("deleting contacts never set: %v, want 404 ContactsNotFound", err)
	}

	pol := certPolicy(pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256}, "Self", "done.example", "application/x-pkcs12")
	if _, err := c.CreateCertificate(ctxT(t), "done", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
		t.Fatal(err)
	}
	waitOperation(t, c, "done", notInProgress)
	if _, err := c.DeleteCertificateOperation(ctxT(t), "done", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetCertificateOperation(ctxT(t), "done", nil); statusOf(err) != http.StatusNotFound || codeOf(err) != "PendingCertificateNotFound" {
		t.Errorf("operation after its delete: %v, want 404 PendingCertificateNotFound", err)
	}
	if _, err := c.GetCertificate(ctxT(t), "done", "", nil); err != nil {
		t.Errorf("the certificate outlives its operation: %v", err)
	}
}
