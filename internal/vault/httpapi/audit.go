package httpapi

import (
	"net/http"
	"strings"

	"github.com/keygate/keygate/internal/audit"
)

// auditRequest writes the audit record of a request served through
// ServeHTTP. The operation, object name and version are read from the
// route that matched, so that every route, whoever adds it, is audited
// the same way.
func (h *Handler) auditRequest(r *http.Request, c *call, rw *audit.Recorder) {
	if h.audit == audit.Discard {
		return // spare the read path the record's allocations
	}
	name, version := objectNameVersion(r)
	rec := audit.Record{
		Time:           h.now(),
		Source:         audit.SourceVault,
		Operation:      operationName(r.Method, r.Pattern),
		Vault:          c.vault,
		ObjectName:     name,
		ObjectVersion:  version,
		CallerObjectID: c.principal.ObjectID,
		CallerClientID: c.principal.ClientID,
		Method:         r.Method,
		Path:           truncate(r.URL.Path, 300),
		Status:         rw.Status(),
		RequestID:      c.requestID,
		Reason:         c.reason,
	}
	if c.addr.IsValid() {
		rec.CallerAddress = c.addr.String()
	}
	h.audit.Log(rec)
}

// objectNameVersion reads the object name and version from the path
// values of the route that matched r: the first wildcard of the pattern
// is the name, the second the version. Wildcards keep their names out of
// this, so routes may call them what they like.
func objectNameVersion(r *http.Request) (name, version string) {
	_, path, _ := strings.Cut(r.Pattern, " ")
	if path == "" {
		path = r.Pattern
	}
	var values []string
	for seg := range strings.SplitSeq(strings.Trim(path, "/"), "/") {
		wild, ok := strings.CutPrefix(seg, "{")
		if !ok || seg == "{$}" {
			continue
		}
		wild = strings.TrimSuffix(strings.TrimSuffix(wild, "}"), "...")
		values = append(values, r.PathValue(wild))
	}
	if len(values) > 0 {
		name = truncate(values[0], 127)
	}
	if len(values) > 1 {
		version = truncate(values[1], 64)
	}
	return name, version
}

// operations are Key Vault's operation names (as its AuditEvent log has
// them) by method and route, the route's wildcards written {} and a
// trailing-slash match ({$}) written as the slash.
var operations = map[string]string{
	"PUT /secrets/{}":                      "SecretSet",
	"GET /secrets/{}/":                     "SecretGet",
	"GET /secrets/{}/{}":                   "SecretGet",
	"PATCH /secrets/{}/":                   "SecretUpdate",
	"PATCH /secrets/{}/{}":                 "SecretUpdate",
	"GET /secrets":                         "SecretList",
	"GET /secrets/{}/versions":             "SecretListVersions",
	"DELETE /secrets/{}":                   "SecretDelete",
	"POST /secrets/{}/backup":              "SecretBackup",
	"POST /secrets/restore":                "SecretRestore",
	"GET /deletedsecrets":                  "SecretListDeleted",
	"GET /deletedsecrets/{}":               "SecretGetDeleted",
	"DELETE /deletedsecrets/{}":            "SecretPurge",
	"POST /deletedsecrets/{}/recover":      "SecretRecover",
	"POST /certificates/{}/create":         "CertificateCreate",
	"POST /certificates/{}/import":         "CertificateImport",
	"GET /certificates/{}/":                "CertificateGet",
	"GET /certificates/{}/{}":              "CertificateGet",
	"PATCH /certificates/{}/":              "CertificateUpdate",
	"PATCH /certificates/{}/{}":            "CertificateUpdate",
	"GET /certificates":                    "CertificateList",
	"GET /certificates/{}/versions":        "CertificateListVersions",
	"GET /certificates/{}/policy":          "CertificatePolicyGet",
	"PATCH /certificates/{}/policy":        "CertificatePolicyUpdate",
	"GET /certificates/{}/pending":         "CertificatePendingGet",
	"PATCH /certificates/{}/pending":       "CertificatePendingUpdate",
	"DELETE /certificates/{}/pending":      "CertificatePendingDelete",
	"POST /certificates/{}/pending/merge":  "CertificatePendingMerge",
	"GET /certificates/issuers":            "CertificateIssuerList",
	"GET /certificates/issuers/{}":         "CertificateIssuerGet",
	"PUT /certificates/issuers/{}":         "CertificateIssuerCreate",
	"PATCH /certificates/issuers/{}":       "CertificateIssuerUpdate",
	"DELETE /certificates/issuers/{}":      "CertificateIssuerDelete",
	"GET /certificates/contacts":           "CertificateContactsGet",
	"PUT /certificates/contacts":           "CertificateContactsSet",
	"DELETE /certificates/contacts":        "CertificateContactsDelete",
	"DELETE /certificates/{}":              "CertificateDelete",
	"POST /certificates/{}/backup":         "CertificateBackup",
	"POST /certificates/restore":           "CertificateRestore",
	"GET /deletedcertificates":             "CertificateListDeleted",
	"GET /deletedcertificates/{}":          "CertificateGetDeleted",
	"DELETE /deletedcertificates/{}":       "CertificatePurge",
	"POST /deletedcertificates/{}/recover": "CertificateRecover",
	"GET /keys/{}/":                        "KeyGet",
	"GET /keys/{}/{}":                      "KeyGet",
}

// operationName names the operation a request's route serves: Key
// Vault's name where the table has it, else one made the same way (the
// object kind, then the route's last word or the method's verb), and
// "Unknown" for a request no route matched.
func operationName(method, pattern string) string {
	_, path, ok := strings.Cut(pattern, " ")
	if !ok {
		path = pattern
	}
	if path == "" {
		return "Unknown"
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		switch {
		case s == "{$}":
			segs[i] = ""
		case strings.HasPrefix(s, "{"):
			segs[i] = "{}"
		}
	}
	norm := "/" + strings.Join(segs, "/")
	if op, ok := operations[method+" "+norm]; ok {
		return op
	}
	return guessOperation(method, segs)
}

// guessOperation makes an operation name for a route the table lacks.
func guessOperation(method string, segs []string) string {
	kind := map[string]string{
		"secrets": "Secret", "deletedsecrets": "SecretDeleted",
		"certificates": "Certificate", "deletedcertificates": "CertificateDeleted",
		"keys": "Key", "deletedkeys": "KeyDeleted",
	}[segs[0]]
	if kind == "" {
		kind = "Vault"
	}
	last := segs[len(segs)-1]
	if len(segs) > 1 && last != "" && last != "{}" {
		return kind + strings.ToUpper(last[:1]) + last[1:]
	}
	verb := map[string]string{
		http.MethodGet: "Get", http.MethodPut: "Set", http.MethodPatch: "Update",
		http.MethodDelete: "Delete", http.MethodPost: "Action",
	}[method]
	return kind + verb
}
