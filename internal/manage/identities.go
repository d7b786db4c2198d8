package manage

import (
	"net/http"
	"time"

	"github.com/keygate/keygate/internal/identity"
)

// identityJSON is a managed identity as Azure's
// Microsoft.ManagedIdentity/userAssignedIdentities resource shows it.
type identityJSON struct {
	ID         string             `json:"id"`
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Properties identityProperties `json:"properties"`
}

type identityProperties struct {
	TenantID       string `json:"tenantId"`
	PrincipalID    string `json:"principalId"`
	ClientID       string `json:"clientId"`
	KeygateService bool   `json:"keygateService"`
}

func identityDoc(mi identity.ManagedIdentity) identityJSON {
	return identityJSON{
		ID: mi.ResourceID, Name: mi.Name, Type: "Microsoft.ManagedIdentity/userAssignedIdentities",
		Properties: identityProperties{
			TenantID: mi.TenantID, PrincipalID: mi.PrincipalID, ClientID: mi.ClientID,
			KeygateService: mi.KeygateService,
		},
	}
}

func (h *Handler) listIdentities(w http.ResponseWriter, r *http.Request, _ *request) error {
	ids, err := h.identities.ListManagedIdentities(r.Context())
	if err != nil {
		return err
	}
	out := make([]identityJSON, 0, len(ids))
	for _, mi := range ids {
		out = append(out, identityDoc(mi))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (h *Handler) getIdentity(w http.ResponseWriter, r *http.Request, req *request) error {
	req.rec.ObjectName = r.PathValue("identity")
	mi, err := h.identities.ManagedIdentity(r.Context(), r.PathValue("identity"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, identityDoc(mi))
	return nil
}

// identityRequest is the body of an identity's creation. location and
// tags are accepted, as Azure's resource has them, and ignored.
type identityRequest struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		KeygateService bool `json:"keygateService"`
	} `json:"properties"`
}

// putIdentity creates an identity (201). One of that name is a conflict:
// its ids are what access policies name, and are never changed.
func (h *Handler) putIdentity(w http.ResponseWriter, r *http.Request, req *request) error {
	var body identityRequest
	if err := decodeOptional(w, r, &body); err != nil {
		return err
	}
	name := r.PathValue("identity")
	req.rec.ObjectName = name
	mi, err := h.identities.CreateManagedIdentity(r.Context(), name,
		identity.ManagedIdentityOptions{KeygateService: body.Properties.KeygateService})
	if err != nil {
		return err
	}
	h.log.Info("managed identity created", "identity", name, "by", req.caller.ObjectID)
	writeJSON(w, http.StatusCreated, identityDoc(mi))
	return nil
}

func (h *Handler) deleteIdentity(w http.ResponseWriter, r *http.Request, req *request) error {
	name := r.PathValue("identity")
	req.rec.ObjectName = name
	mi, err := h.identities.ManagedIdentity(r.Context(), name)
	if err != nil {
		return err
	}
	if err := h.identities.DeleteManagedIdentity(r.Context(), name); err != nil {
		return err
	}
	h.log.Info("managed identity deleted", "identity", name, "by", req.caller.ObjectID)
	writeJSON(w, http.StatusOK, identityDoc(mi))
	return nil
}

// hostJSON is a host and the identities assigned to it.
type hostJSON struct {
	Name                string    `json:"name"`
	Identities          []string  `json:"identities"`
	CredentialIssuedOn  time.Time `json:"credentialIssuedOn"`
	CredentialExpiresOn time.Time `json:"credentialExpiresOn"`
	Created             time.Time `json:"created"`
	Updated             time.Time `json:"updated"`
}

func hostDoc(host identity.Host) hostJSON {
	ids := host.Identities
	if ids == nil {
		ids = []string{}
	}
	return hostJSON{
		Name: host.Name, Identities: ids,
		CredentialIssuedOn: host.CredentialIssued, CredentialExpiresOn: host.CredentialExpires,
		Created: host.Created, Updated: host.Updated,
	}
}

// enrolmentJSON answers a call that issued a host credential: the host,
// and what its agent needs. Credential is empty when the call issued none.
type enrolmentJSON struct {
	Host       hostJSON `json:"host"`
	Credential string   `json:"credential,omitempty"`
	Authority  string   `json:"authority"`
}

func (h *Handler) listHosts(w http.ResponseWriter, r *http.Request, _ *request) error {
	hosts, err := h.identities.ListHosts(r.Context())
	if err != nil {
		return err
	}
	out := make([]hostJSON, 0, len(hosts))
	for _, host := range hosts {
		out = append(out, hostDoc(host))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (h *Handler) getHost(w http.ResponseWriter, r *http.Request, req *request) error {
	req.rec.ObjectName = r.PathValue("host")
	host, err := h.identities.Host(r.Context(), r.PathValue("host"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, hostDoc(host))
	return nil
}

// credentialRequest is the optional body of calls that may issue a host
// credential.
type credentialRequest struct {
	// CredentialLifetimeSeconds is how long a credential issued is valid;
	// zero means identity.DefaultCredentialLifetime.
	CredentialLifetimeSeconds int64 `json:"credentialLifetimeSeconds"`
}

func (c credentialRequest) lifetime() time.Duration {
	return time.Duration(c.CredentialLifetimeSeconds) * time.Second
}

// assignIdentity assigns the identity to the host, creating the host with
// a credential if it is new (201, credential in the answer) or extending
// it (200, no credential).
func (h *Handler) assignIdentity(w http.ResponseWriter, r *http.Request, req *request) error {
	var body credentialRequest
	if err := decodeOptional(w, r, &body); err != nil {
		return err
	}
	name, hostName := r.PathValue("identity"), r.PathValue("host")
	req.rec.ObjectName = hostName
	host, cred, err := h.identities.AssignIdentity(r.Context(), name, hostName, body.lifetime())
	if err != nil {
		return err
	}
	h.log.Info("managed identity assigned", "identity", name, "host", hostName, "by", req.caller.ObjectID)
	status := http.StatusOK
	if cred != "" {
		status = http.StatusCreated
	}
	writeJSON(w, status, enrolmentJSON{Host: hostDoc(host), Credential: cred, Authority: h.identities.TenantURL()})
	return nil
}

func (h *Handler) unassignIdentity(w http.ResponseWriter, r *http.Request, req *request) error {
	name, hostName := r.PathValue("identity"), r.PathValue("host")
	req.rec.ObjectName = hostName
	host, err := h.identities.UnassignIdentity(r.Context(), name, hostName)
	if err != nil {
		return err
	}
	h.log.Info("managed identity unassigned", "identity", name, "host", hostName, "by", req.caller.ObjectID)
	writeJSON(w, http.StatusOK, hostDoc(host))
	return nil
}

// rotateCredential issues the host a new enrolment credential; the old
// one stops working at once.
func (h *Handler) rotateCredential(w http.ResponseWriter, r *http.Request, req *request) error {
	var body credentialRequest
	if err := decodeOptional(w, r, &body); err != nil {
		return err
	}
	hostName := r.PathValue("host")
	req.rec.ObjectName = hostName
	host, cred, err := h.identities.RotateHostCredential(r.Context(), hostName, body.lifetime())
	if err != nil {
		return err
	}
	h.log.Info("host credential issued", "host", hostName, "expires", host.CredentialExpires, "by", req.caller.ObjectID)
	writeJSON(w, http.StatusOK, enrolmentJSON{Host: hostDoc(host), Credential: cred, Authority: h.identities.TenantURL()})
	return nil
}

func (h *Handler) deleteHost(w http.ResponseWriter, r *http.Request, req *request) error {
	hostName := r.PathValue("host")
	req.rec.ObjectName = hostName
	host, err := h.identities.Host(r.Context(), hostName)
	if err != nil {
		return err
	}
	if err := h.identities.DeleteHost(r.Context(), hostName); err != nil {
		return err
	}
	h.log.Info("host deleted", "host", hostName, "by", req.caller.ObjectID)
	writeJSON(w, http.StatusOK, hostDoc(host))
	return nil
}
