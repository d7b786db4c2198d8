package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/audit"
)

// auditRequest writes the audit record of a request served through
// ServeHTTP. The operation, object name and version are read from the
// request's method and path, so that every route, whoever adds it and
// however it dispatches, is audited the same way.
func (h *Handler) auditRequest(r *http.Request, c *call, rw *audit.Recorder, start time.Time) {
	if h.audit == audit.Discard {
		return // spare the read path the record's allocations
	}
	op, name, version := describe(r)
	rec := audit.Record{
		Time:           h.now(),
		Source:         audit.SourceVault,
		Operation:      op,
		Vault:          c.vault,
		ObjectName:     truncate(name, 127),
		ObjectVersion:  truncate(version, 64),
		CallerObjectID: c.principal.ObjectID,
		CallerClientID: c.principal.ClientID,
		Method:         r.Method,
		Path:           truncate(r.URL.Path, 300),
		Status:         rw.Status(),
		RequestID:      c.requestID,
		Reason:         c.reason,
		DurationMs:     audit.Since(start),
	}
	if c.addr.IsValid() {
		rec.CallerAddress = c.addr.String()
	}
	h.audit.Log(rec)
}

// describe names the operation r asks for and the object it addresses.
// A request the mux routed is matched against Key Vault's routes by its
// path, so that a route that dispatches on a segment itself (one pattern
// for /certificates/{name}/policy and /certificates/{name}/{version}) is
// told apart; the first wildcard segment is the object's name, the second
// its version. A routed request no table entry fits is named from its
// pattern and path values; an unrouted one is "Unknown".
func describe(r *http.Request) (op, name, version string) {
	if r.Pattern == "" {
		return "Unknown", "", ""
	}
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if rt, ok := matchRoute(r.Method, segs); ok {
		var values []string
		for i, t := range rt.segs {
			if t == "{}" {
				values = append(values, segs[i])
			}
		}
		if len(values) > 0 {
			name = values[0]
		}
		if len(values) > 1 {
			version = values[1]
		}
		return rt.op, name, version
	}
	name, version = objectNameVersion(r)
	return operationName(r.Method, r.Pattern), name, version
}

// route is an entry of operations, split into segments.
type route struct {
	method   string
	segs     []string // literals, "{}" for a wildcard, "" for a trailing slash
	literals int
	op       string
}

// routes is operations, split once.
var routes = func() []route {
	out := make([]route, 0, len(operations))
	for k, op := range operations {
		method, path, _ := strings.Cut(k, " ")
		rt := route{method: method, segs: strings.Split(strings.TrimPrefix(path, "/"), "/"), op: op}
		for _, s := range rt.segs {
			if s != "{}" {
				rt.literals++
			}
		}
		out = append(out, rt)
	}
	return out
}()

// matchRoute returns the route that fits method and the path's segments
// with the most literal segments.
func matchRoute(method string, segs []string) (route, bool) {
	var (
		best  route
		found bool
	)
	for _, rt := range routes {
		if rt.method != method || len(rt.segs) != len(segs) || (found && rt.literals <= best.literals) {
			continue
		}
		if fits(rt.segs, segs) {
			best, found = rt, true
		}
	}
	return best, found
}

// fits reports whether a path's segments fit a route's.
func fits(route, segs []string) bool {
	for i, t := range route {
		if t != "{}" && t != segs[i] || t == "{}" && segs[i] == "" {
			return false
		}
	}
	return true
}

// objectNameVersion reads the object name and version from the path
// values of the route that matched r: the first wildcard of the pattern
// is the name, the second the version.
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
		name = values[0]
	}
	if len(values) > 1 {
		version = values[1]
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
	"GET /keygate/events":                  "EventsSubscribe",
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
