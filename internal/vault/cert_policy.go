package vault

import (
	"crypto/x509"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/issuer"
	"github.com/keygate/keygate/internal/pki"
)

// Content types of a certificate's secret.
const (
	ContentTypePFX = "application/x-pkcs12"
	ContentTypePEM = "application/x-pem-file"
)

// Lifetime action types.
const (
	ActionAutoRenew     = "AutoRenew"
	ActionEmailContacts = "EmailContacts"
)

// Defaults of a policy that leaves fields out, as Key Vault fills them.
const (
	defaultValidityMonths  = 12
	defaultRSASize         = 2048
	defaultLifetimePercent = 80
)

// Policy is a certificate's management policy: what key and certificate
// to make, where the secret's content type comes from, who issues, and
// what to do as the certificate ages. Field names follow Key Vault's.
type Policy struct {
	Key             KeyProps         `json:"key"`
	ContentType     string           `json:"contentType"`
	X509            pki.X509Props    `json:"x509"`
	LifetimeActions []LifetimeAction `json:"lifetimeActions"`
	Issuer          IssuerParams     `json:"issuer"`
	Enabled         bool             `json:"enabled"`
	Created         time.Time        `json:"created"`
	Updated         time.Time        `json:"updated"`
}

// KeyProps are a policy's key_props.
type KeyProps struct {
	Type       string `json:"kty"`
	Size       int    `json:"size,omitempty"`
	Curve      string `json:"crv,omitempty"`
	Exportable bool   `json:"exportable"`
	ReuseKey   bool   `json:"reuseKey"`
}

// Spec is the key to make.
func (k KeyProps) Spec() pki.KeySpec { return pki.KeySpec{Type: k.Type, Size: k.Size, Curve: k.Curve} }

// LifetimeAction is one entry of a policy's lifetime_actions: Action at
// LifetimePercentage of the validity, or DaysBeforeExpiry (one of them).
type LifetimeAction struct {
	Action             string `json:"action"`
	LifetimePercentage int    `json:"lifetimePercentage,omitempty"`
	DaysBeforeExpiry   int    `json:"daysBeforeExpiry,omitempty"`
}

// DueAt is when the action falls due for a certificate valid from nbf
// to exp.
func (a LifetimeAction) DueAt(nbf, exp time.Time) time.Time {
	if a.DaysBeforeExpiry > 0 {
		return exp.Add(-time.Duration(a.DaysBeforeExpiry) * 24 * time.Hour)
	}
	life := exp.Sub(nbf)
	return nbf.Add(time.Duration(float64(life) * float64(a.LifetimePercentage) / 100))
}

// IssuerParams are a policy's issuer: Self, Unknown or the name of an
// issuer object of the vault.
type IssuerParams struct {
	Name             string `json:"name"`
	CertType         string `json:"cty,omitempty"`
	CertTransparency *bool  `json:"certTransparency,omitempty"`
}

// PolicyInput is a policy as a request gives it: nil fields are left as
// they are (on update) or take Key Vault's defaults (on create).
type PolicyInput struct {
	KeyType     *string
	KeySize     *int
	Curve       *string
	Exportable  *bool
	ReuseKey    *bool
	ContentType *string

	Subject        *string
	DNSNames       []string
	Emails         []string
	IPAddresses    []string
	URIs           []string
	UPNs           []string
	EKUs           []string
	KeyUsage       []string
	ValidityMonths *int

	// LifetimeActions replaces every action when not nil.
	LifetimeActions []LifetimeActionInput

	IssuerName       *string
	CertType         *string
	CertTransparency *bool

	Enabled *bool
}

// LifetimeActionInput is one lifetime action as a request gives it.
type LifetimeActionInput struct {
	Action             *string
	LifetimePercentage *int
	DaysBeforeExpiry   *int
}

// defaultPolicy is what a create request that names nothing gets.
func defaultPolicy() Policy {
	return Policy{
		Key:         KeyProps{Type: pki.KeyTypeRSA, Exportable: true},
		ContentType: ContentTypePFX,
		X509:        pki.X509Props{ValidityMonths: defaultValidityMonths},
		Issuer:      IssuerParams{Name: issuer.Unknown},
		Enabled:     true,
	}
}

// apply overlays in on p. It does not validate.
func (p *Policy) apply(in PolicyInput) {
	setIf(&p.Key.Type, in.KeyType)
	setIf(&p.Key.Size, in.KeySize)
	setIf(&p.Key.Curve, in.Curve)
	setIf(&p.Key.Exportable, in.Exportable)
	setIf(&p.Key.ReuseKey, in.ReuseKey)
	setIf(&p.ContentType, in.ContentType)
	setIf(&p.X509.Subject, in.Subject)
	setSlice(&p.X509.DNSNames, in.DNSNames)
	setSlice(&p.X509.Emails, in.Emails)
	setSlice(&p.X509.IPAddresses, in.IPAddresses)
	setSlice(&p.X509.URIs, in.URIs)
	setSlice(&p.X509.EKUs, in.EKUs)
	setSlice(&p.X509.KeyUsage, in.KeyUsage)
	setIf(&p.X509.ValidityMonths, in.ValidityMonths)
	if in.IssuerName != nil {
		p.Issuer.Name = issuer.CanonicalName(*in.IssuerName)
	}
	setIf(&p.Issuer.CertType, in.CertType)
	if in.CertTransparency != nil {
		p.Issuer.CertTransparency = in.CertTransparency
	}
	setIf(&p.Enabled, in.Enabled)
	if in.LifetimeActions != nil {
		p.LifetimeActions = make([]LifetimeAction, len(in.LifetimeActions))
		for i, a := range in.LifetimeActions {
			p.LifetimeActions[i] = LifetimeAction{
				Action:             derefOr(a.Action, ""),
				LifetimePercentage: derefOr(a.LifetimePercentage, 0),
				DaysBeforeExpiry:   derefOr(a.DaysBeforeExpiry, 0),
			}
		}
	}
}

func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

func setSlice(dst *[]string, src []string) {
	if src != nil {
		*dst = slices.Clone(src)
	}
}

// fillDefaults completes what a new policy left out: the key size or
// curve for the key type, a key usage and EKUs for TLS, and the lifetime
// action Key Vault starts with.
func (p *Policy) fillDefaults(in PolicyInput) {
	if p.Key.Type == pki.KeyTypeRSA && in.KeySize == nil {
		p.Key.Size = defaultRSASize
	}
	if p.Key.Type == pki.KeyTypeEC && in.Curve == nil {
		p.Key.Curve = pki.CurveP256
	}
	if in.KeyUsage == nil {
		p.X509.KeyUsage = []string{"digitalSignature", "keyEncipherment"}
		if p.Key.Type == pki.KeyTypeEC {
			p.X509.KeyUsage = []string{"digitalSignature"}
		}
	}
	if in.EKUs == nil {
		p.X509.EKUs = []string{"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}
	}
	if in.LifetimeActions == nil {
		action := ActionAutoRenew
		if p.Issuer.Name == issuer.Unknown {
			action = ActionEmailContacts
		}
		p.LifetimeActions = []LifetimeAction{{Action: action, LifetimePercentage: defaultLifetimePercent}}
	}
}

// validate checks p for contradictions and values keygate cannot serve.
// Errors name the field as Key Vault's JSON does (policy.key_props.kty).
func (p *Policy) validate(in PolicyInput) error {
	if err := p.validateKey(in); err != nil {
		return err
	}
	switch p.ContentType {
	case ContentTypePFX, ContentTypePEM:
	default:
		return badParameter("policy.secret_props.contentType: %q is not %s or %s", quoteName(p.ContentType), ContentTypePFX, ContentTypePEM)
	}
	if len(in.UPNs) > 0 {
		return badParameter("policy.x509_props.sans.upns: user principal names are not supported; use emails")
	}
	if in.ValidityMonths != nil && *in.ValidityMonths <= 0 {
		return badParameter("policy.x509_props.validity_months: %d; a certificate must be valid for at least one month", *in.ValidityMonths)
	}
	if err := p.X509.Validate(); err != nil {
		return badParameter("policy.x509_props.%s", err)
	}
	if p.Issuer.Name == "" {
		return badParameter("policy.issuer.name: required: Self, Unknown or the name of an issuer of this vault")
	}
	if p.Issuer.Name != issuer.Self && p.Issuer.Name != issuer.Unknown {
		if err := ValidateName(p.Issuer.Name); err != nil {
			return badParameter("policy.issuer.name: %q is not Self, Unknown or a valid issuer name", quoteName(p.Issuer.Name))
		}
	}
	return p.validateActions()
}

func (p *Policy) validateKey(in PolicyInput) error {
	k := &p.Key
	switch k.Type {
	case pki.KeyTypeRSA:
		if in.Curve != nil && *in.Curve != "" {
			return badParameter("policy.key_props.crv: an RSA key has no curve; give key_size instead")
		}
		k.Curve = "" // left from an EC policy this one replaces
		if k.Size == 0 {
			k.Size = defaultRSASize
		}
		if !slices.Contains(pki.RSASizes, k.Size) {
			return badParameter("policy.key_props.key_size: %d is not a supported RSA size (2048, 3072 or 4096)", k.Size)
		}
	case pki.KeyTypeEC:
		if in.KeySize != nil && *in.KeySize != 0 {
			return badParameter("policy.key_props.key_size: an EC key's size follows from its curve; give crv (P-256, P-384 or P-521) and no key_size")
		}
		k.Size = 0
		switch k.Curve {
		case pki.CurveP256, pki.CurveP384, pki.CurveP521:
		default:
			return badParameter("policy.key_props.crv: %q is not P-256, P-384 or P-521", quoteName(k.Curve))
		}
	case "RSA-HSM", "EC-HSM":
		return badParameter("policy.key_props.kty: %s needs a hardware security module, which keygate does not have; use RSA or EC", k.Type)
	default:
		return badParameter("policy.key_props.kty: %q is not RSA or EC", quoteName(k.Type))
	}
	return nil
}

func (p *Policy) validateActions() error {
	seen := map[string]bool{}
	maxDays := p.X509.ValidityMonths * 27
	for i, a := range p.LifetimeActions {
		field := fmt.Sprintf("policy.lifetime_actions[%d]", i)
		switch a.Action {
		case ActionAutoRenew, ActionEmailContacts:
		case "":
			return badParameter("%s.action.action_type: required: AutoRenew or EmailContacts", field)
		default:
			return badParameter("%s.action.action_type: %q is not AutoRenew or EmailContacts", field, quoteName(a.Action))
		}
		if seen[a.Action] {
			return badParameter("%s: a second %s action; give each action once", field, a.Action)
		}
		seen[a.Action] = true
		switch {
		case a.LifetimePercentage != 0 && a.DaysBeforeExpiry != 0:
			return badParameter("%s.trigger: give lifetime_percentage or days_before_expiry, not both", field)
		case a.LifetimePercentage == 0 && a.DaysBeforeExpiry == 0:
			return badParameter("%s.trigger: give lifetime_percentage (1 to 99) or days_before_expiry", field)
		case a.LifetimePercentage < 0 || a.LifetimePercentage > 99:
			return badParameter("%s.trigger.lifetime_percentage: %d is out of range; give 1 to 99", field, a.LifetimePercentage)
		case a.DaysBeforeExpiry < 0 || a.DaysBeforeExpiry > maxDays:
			return badParameter("%s.trigger.days_before_expiry: %d is out of range; give 1 to %d (validity_months x 27)", field, a.DaysBeforeExpiry, maxDays)
		}
		if a.Action == ActionAutoRenew && p.Issuer.Name == issuer.Unknown {
			return badParameter("%s: AutoRenew needs an issuer the vault signs with (Self or a keygate-ca issuer); with issuer Unknown use EmailContacts", field)
		}
	}
	return nil
}

// newPolicy makes the policy of a create request: defaults, then in.
func newPolicy(in PolicyInput, now time.Time) (Policy, error) {
	p := defaultPolicy()
	p.apply(in)
	p.fillDefaults(in)
	if err := p.validate(in); err != nil {
		return Policy{}, err
	}
	p.Created, p.Updated = now, now
	return p, nil
}

// policyFromCertificate describes an imported certificate as the policy
// Key Vault gives it: key and X.509 properties read from the certificate,
// issuer Unknown, with in (the import request's policy, if any) laid over
// it. The key properties in must agree with the key.
func policyFromCertificate(leaf *x509.Certificate, contentType string, in PolicyInput, now time.Time) (Policy, error) {
	spec, err := pki.SpecOf(leaf.PublicKey)
	if err != nil {
		return Policy{}, badParameter("value: %s", err)
	}
	p := defaultPolicy()
	p.Key = KeyProps{Type: spec.Type, Size: spec.Size, Curve: spec.Curve, Exportable: true}
	p.ContentType = contentType
	p.X509 = x509Props(leaf)
	p.LifetimeActions = []LifetimeAction{{Action: ActionEmailContacts, LifetimePercentage: defaultLifetimePercent}}
	if err := checkKeyAgrees(spec, in); err != nil {
		return Policy{}, err
	}
	p.apply(in)
	if err := p.validate(in); err != nil {
		return Policy{}, err
	}
	p.Created, p.Updated = now, now
	return p, nil
}

func checkKeyAgrees(spec pki.KeySpec, in PolicyInput) error {
	if in.KeyType != nil && !strings.EqualFold(*in.KeyType, spec.Type) {
		return badParameter("policy.key_props.kty: %q, but the certificate's key is %s", quoteName(*in.KeyType), spec.Type)
	}
	if in.KeySize != nil && spec.Type == pki.KeyTypeRSA && *in.KeySize != spec.Size {
		return badParameter("policy.key_props.key_size: %d, but the certificate's key is %s", *in.KeySize, spec)
	}
	if in.Curve != nil && *in.Curve != spec.Curve {
		return badParameter("policy.key_props.crv: %q, but the certificate's key is %s", quoteName(*in.Curve), spec)
	}
	return nil
}

// x509Props reads a certificate's X.509 properties as a policy states
// them.
func x509Props(c *x509.Certificate) pki.X509Props {
	p := pki.X509Props{
		Subject:        c.Subject.String(),
		DNSNames:       c.DNSNames,
		Emails:         c.EmailAddresses,
		KeyUsage:       pki.KeyUsageNames(c.KeyUsage),
		ValidityMonths: validityMonths(c.NotBefore, c.NotAfter),
	}
	for _, ip := range c.IPAddresses {
		p.IPAddresses = append(p.IPAddresses, ip.String())
	}
	for _, u := range c.URIs {
		p.URIs = append(p.URIs, u.String())
	}
	for _, e := range c.ExtKeyUsage {
		if oid, ok := extKeyUsageOIDs[e]; ok {
			p.EKUs = append(p.EKUs, oid)
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		p.EKUs = append(p.EKUs, oid.String())
	}
	return p
}

func validityMonths(nbf, exp time.Time) int {
	m := int(math.Round(exp.Sub(nbf).Hours() / 24 / 30.44))
	return max(m, 1)
}

var extKeyUsageOIDs = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageServerAuth:      "1.3.6.1.5.5.7.3.1",
	x509.ExtKeyUsageClientAuth:      "1.3.6.1.5.5.7.3.2",
	x509.ExtKeyUsageCodeSigning:     "1.3.6.1.5.5.7.3.3",
	x509.ExtKeyUsageEmailProtection: "1.3.6.1.5.5.7.3.4",
	x509.ExtKeyUsageTimeStamping:    "1.3.6.1.5.5.7.3.8",
	x509.ExtKeyUsageOCSPSigning:     "1.3.6.1.5.5.7.3.9",
}
