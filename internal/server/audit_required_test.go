package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/manage"
	"github.com/keygate/keygate/internal/server"
	"github.com/keygate/keygate/internal/testkit"
)

// TestAuditRequiredRefusesWhileUnwritable runs a vault whose audit log is
// required on a disk that fills up (writes refused by the kernel with
// ENOSPC) and empties again: once a record could not be written, the data
// plane, the management API and the token endpoint answer 503 until a
// record can be written, and then serve again. The refusals are audited.
func TestAuditRequiredRefusesWhileUnwritable(t *testing.T) {
	disk := testkit.NewDiskFull(t)
	tv := startVault(t, "", func(c *server.Config) {
		w := audit.NewWriter(disk, c.Logger)
		w.Require()
		c.Audit = w
	})
	token := tv.adminToken()
	manageToken, err := tv.creds.Token(ctxT(t), tv.http, manage.Audience+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	get := func() (int, string) {
		resp, body := tv.do(http.MethodGet, "/secrets/absent/"+cq, token, "")
		return resp.StatusCode, body
	}
	if st, _ := get(); st != http.StatusNotFound {
		t.Fatalf("GET with the audit log writable: %d, want 404", st)
	}

	// The disk fills: the request whose record fails was already
	// answered; those after it are refused.
	disk.SetFull(true)
	if st, _ := get(); st != http.StatusNotFound {
		t.Fatalf("GET whose record is the first to fail: %d, want 404", st)
	}
	st, body := get()
	var e struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal([]byte(body), &e)
	if st != http.StatusServiceUnavailable || e.Error.Code != "ServiceUnavailable" || !strings.Contains(e.Error.Message, "audit log") {
		t.Errorf("GET with the audit log unwritable: %d %s, want 503 ServiceUnavailable about the audit log", st, body)
	}
	if st, _ := tv.manageAs(manageToken, http.MethodGet, "/vaults", nil); st != http.StatusServiceUnavailable {
		t.Errorf("management with the audit log unwritable: %d, want 503", st)
	}
	// Raw, as the SDK's credential would retry a 503 for seconds.
	resp, err := tv.http.PostForm(tv.srv.AuthorityHost()+tv.srv.TenantID()+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {tv.creds.ClientID},
		"client_secret": {tv.creds.ClientSecret}, "scope": {tv.srv.Resource() + "/.default"},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("token request with the audit log unwritable: %d, want 503", resp.StatusCode)
	}

	// Space again: the next refusal's record is written, and from then
	// on requests are served.
	disk.SetFull(false)
	if st, _ := get(); st != http.StatusServiceUnavailable {
		t.Errorf("first GET after the disk emptied: %d, want 503 (its record is the probe)", st)
	}
	if st, _ := get(); st != http.StatusNotFound {
		t.Errorf("GET once the audit log is writable again: %d, want 404", st)
	}

	var refusal audit.Record
	for line := range strings.Lines(disk.String()) {
		var r audit.Record
		if json.Unmarshal([]byte(line), &r) == nil && r.Status == http.StatusServiceUnavailable && r.Source == audit.SourceVault {
			refusal = r
		}
	}
	if refusal.Operation != "SecretGet" || refusal.ObjectName != "absent" || refusal.Reason != audit.RefusalMessage {
		t.Errorf("the refusal was audited as %+v, want SecretGet of absent with the refusal's reason", refusal)
	}
}
