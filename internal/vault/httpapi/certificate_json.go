package httpapi

import (
	"encoding/base64"
	"net/http"
	"time"

	"github.com/keygate/keygate/internal/vault"
)

// certificateBundle is Key Vault's CertificateBundle, and with the
// deletion fields set, its DeletedCertificateBundle. List items use only
// id, attributes, tags and x5t.
type certificateBundle struct {
	ID                 string            `json:"id"`
	KID                string            `json:"kid,omitempty"`
	SID                string            `json:"sid,omitempty"`
	X5T                string            `json:"x5t,omitempty"`
	CER                string            `json:"cer,omitempty"`
	Policy             *policyJSON       `json:"policy,omitempty"`
	ContentType        string            `json:"contentType,omitempty"`
	Attributes         attributesJSON    `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        int64             `json:"deletedDate,omitempty"`
	ScheduledPurgeDate int64             `json:"scheduledPurgeDate,omitempty"`

	// Pending points at the operation making this version, which has no
	// certificate (nor key or secret) yet.
	Pending *pendingRef `json:"pending,omitempty"`
}

type pendingRef struct {
	ID string `json:"id"`
}

// certificateItem is a list entry: the properties of a version.
func certificateItem(r *http.Request, p vault.CertificateProperties, withVersion bool) certificateBundle {
	version := ""
	if withVersion {
		version = p.Version
	}
	return certificateBundle{
		ID:         objectID(r, "certificates", p.Name, version),
		X5T:        base64.RawURLEncoding.EncodeToString(p.Thumbprint),
		Attributes: toAttributesJSON(p.Attributes, p.RecoverableDays, p.RecoveryLevel),
		Tags:       p.Tags,
	}
}

func certificateJSON(r *http.Request, c vault.Certificate) certificateBundle {
	b := certificateItem(r, c.CertificateProperties, true)
	b.Policy = toPolicyJSON(r, c.Name, c.Policy)
	b.ContentType = c.ContentType
	if c.Pending {
		b.Pending = &pendingRef{ID: objectID(r, "certificates", c.Name, "pending")}
		return b
	}
	b.KID = objectID(r, "keys", c.Name, c.Version)
	b.SID = objectID(r, "secrets", c.Name, c.Version)
	b.CER = base64.StdEncoding.EncodeToString(c.CER)
	return b
}

func deletedCertificateJSON(r *http.Request, d vault.DeletedCertificate) certificateBundle {
	b := certificateJSON(r, d.Certificate)
	b.RecoveryID = objectID(r, "deletedcertificates", d.Name, "")
	b.DeletedDate = d.DeletedDate.Unix()
	b.ScheduledPurgeDate = d.ScheduledPurgeDate.Unix()
	return b
}

// policyJSON is Key Vault's CertificatePolicy, in requests and responses.
// Pointers tell a field left out from one set to its zero value.
type policyJSON struct {
	ID              string               `json:"id,omitempty"`
	KeyProps        *keyPropsJSON        `json:"key_props,omitempty"`
	SecretProps     *secretPropsJSON     `json:"secret_props,omitempty"`
	X509Props       *x509PropsJSON       `json:"x509_props,omitempty"`
	LifetimeActions []lifetimeActionJSON `json:"lifetime_actions,omitempty"`
	Issuer          *issuerParamsJSON    `json:"issuer,omitempty"`
	Attributes      *attributesJSON      `json:"attributes,omitempty"`
}

type keyPropsJSON struct {
	Exportable *bool   `json:"exportable,omitempty"`
	KTY        *string `json:"kty,omitempty"`
	KeySize    *int    `json:"key_size,omitempty"`
	ReuseKey   *bool   `json:"reuse_key,omitempty"`
	CRV        *string `json:"crv,omitempty"`
}

type secretPropsJSON struct {
	ContentType *string `json:"contentType,omitempty"`
}

type x509PropsJSON struct {
	Subject        *string   `json:"subject,omitempty"`
	SANs           *sansJSON `json:"sans,omitempty"`
	EKUs           []string  `json:"ekus,omitempty"`
	KeyUsage       []string  `json:"key_usage,omitempty"`
	ValidityMonths *int      `json:"validity_months,omitempty"`
}

type sansJSON struct {
	DNSNames    []string `json:"dns_names,omitempty"`
	Emails      []string `json:"emails,omitempty"`
	UPNs        []string `json:"upns,omitempty"`
	IPAddresses []string `json:"ipAddresses,omitempty"`
	URIs        []string `json:"uris,omitempty"`
}

type lifetimeActionJSON struct {
	Trigger *triggerJSON `json:"trigger,omitempty"`
	Action  *actionJSON  `json:"action,omitempty"`
}

type triggerJSON struct {
	LifetimePercentage *int `json:"lifetime_percentage,omitempty"`
	DaysBeforeExpiry   *int `json:"days_before_expiry,omitempty"`
}

type actionJSON struct {
	ActionType *string `json:"action_type,omitempty"`
}

type issuerParamsJSON struct {
	Name             *string `json:"name,omitempty"`
	CTY              *string `json:"cty,omitempty"`
	CertTransparency *bool   `json:"cert_transparency,omitempty"`
}

// input turns a request's policy into the domain's. A sans object given
// replaces every alternative name, so its lists are all set.
func (p *policyJSON) input() *vault.PolicyInput {
	if p == nil {
		return nil
	}
	in := &vault.PolicyInput{}
	if k := p.KeyProps; k != nil {
		in.KeyType, in.KeySize, in.Curve, in.Exportable, in.ReuseKey = k.KTY, k.KeySize, k.CRV, k.Exportable, k.ReuseKey
	}
	if p.SecretProps != nil {
		in.ContentType = p.SecretProps.ContentType
	}
	if x := p.X509Props; x != nil {
		in.Subject, in.EKUs, in.KeyUsage, in.ValidityMonths = x.Subject, x.EKUs, x.KeyUsage, x.ValidityMonths
		if s := x.SANs; s != nil {
			in.DNSNames, in.Emails, in.UPNs = nonNil(s.DNSNames), nonNil(s.Emails), s.UPNs
			in.IPAddresses, in.URIs = nonNil(s.IPAddresses), nonNil(s.URIs)
		}
	}
	if p.LifetimeActions != nil {
		in.LifetimeActions = make([]vault.LifetimeActionInput, len(p.LifetimeActions))
		for i, a := range p.LifetimeActions {
			if a.Trigger != nil {
				in.LifetimeActions[i].LifetimePercentage = a.Trigger.LifetimePercentage
				in.LifetimeActions[i].DaysBeforeExpiry = a.Trigger.DaysBeforeExpiry
			}
			if a.Action != nil {
				in.LifetimeActions[i].Action = a.Action.ActionType
			}
		}
	}
	if is := p.Issuer; is != nil {
		in.IssuerName, in.CertType, in.CertTransparency = is.Name, is.CTY, is.CertTransparency
	}
	if p.Attributes != nil {
		in.Enabled = p.Attributes.Enabled
	}
	return in
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func toPolicyJSON(r *http.Request, name string, p vault.Policy) *policyJSON {
	x := p.X509
	out := &policyJSON{
		ID: objectID(r, "certificates", name, "policy"),
		KeyProps: &keyPropsJSON{
			Exportable: &p.Key.Exportable, KTY: &p.Key.Type, ReuseKey: &p.Key.ReuseKey,
			KeySize: nonZero(p.Key.Size), CRV: nonEmpty(p.Key.Curve),
		},
		SecretProps: &secretPropsJSON{ContentType: &p.ContentType},
		X509Props: &x509PropsJSON{
			Subject: &x.Subject, EKUs: x.EKUs, KeyUsage: x.KeyUsage, ValidityMonths: &x.ValidityMonths,
			SANs: &sansJSON{DNSNames: x.DNSNames, Emails: x.Emails, IPAddresses: x.IPAddresses, URIs: x.URIs},
		},
		Issuer: &issuerParamsJSON{Name: &p.Issuer.Name, CTY: nonEmpty(p.Issuer.CertType), CertTransparency: p.Issuer.CertTransparency},
		Attributes: &attributesJSON{
			Enabled: &p.Enabled, Created: unixOrNil(timePtr(p.Created)), Updated: unixOrNil(timePtr(p.Updated)),
		},
	}
	for _, a := range p.LifetimeActions {
		out.LifetimeActions = append(out.LifetimeActions, lifetimeActionJSON{
			Trigger: &triggerJSON{LifetimePercentage: nonZero(a.LifetimePercentage), DaysBeforeExpiry: nonZero(a.DaysBeforeExpiry)},
			Action:  &actionJSON{ActionType: nonEmpty(a.Action)},
		})
	}
	return out
}

func nonZero(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// operationJSON is Key Vault's CertificateOperation.
type operationJSON struct {
	ID                    string            `json:"id"`
	Issuer                *issuerParamsJSON `json:"issuer,omitempty"`
	CSR                   string            `json:"csr,omitempty"`
	CancellationRequested bool              `json:"cancellation_requested"`
	Status                string            `json:"status"`
	StatusDetails         string            `json:"status_details,omitempty"`
	Error                 *errorDetail      `json:"error,omitempty"`
	Target                string            `json:"target,omitempty"`
	RequestID             string            `json:"request_id"`
}

func operationOut(r *http.Request, op vault.Operation) operationJSON {
	out := operationJSON{
		ID:                    objectID(r, "certificates", op.Name, "pending"),
		Issuer:                &issuerParamsJSON{Name: &op.Issuer.Name, CTY: nonEmpty(op.Issuer.CertType), CertTransparency: op.Issuer.CertTransparency},
		CancellationRequested: op.CancellationRequested,
		Status:                op.Status,
		StatusDetails:         op.StatusDetails,
		RequestID:             op.RequestID,
	}
	if len(op.CSR) > 0 {
		out.CSR = base64.StdEncoding.EncodeToString(op.CSR)
	}
	if op.Error != nil {
		out.Error = &errorDetail{Code: op.Error.Code, Message: op.Error.Message}
	}
	if op.Target != "" {
		out.Target = objectID(r, "certificates", op.Name, op.Target)
	}
	return out
}
