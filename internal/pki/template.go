package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// X509Props are the X.509 properties of a certificate to make, as a Key
// Vault policy's x509_props states them.
type X509Props struct {
	Subject        string
	DNSNames       []string
	Emails         []string
	IPAddresses    []string
	URIs           []string
	EKUs           []string // dotted OIDs
	KeyUsage       []string // Key Vault names: digitalSignature, ...
	ValidityMonths int
}

// keyUsageBits maps Key Vault's key usage names to x509's bits.
var keyUsageBits = map[string]x509.KeyUsage{
	"digitalSignature": x509.KeyUsageDigitalSignature,
	"nonRepudiation":   x509.KeyUsageContentCommitment,
	"keyEncipherment":  x509.KeyUsageKeyEncipherment,
	"dataEncipherment": x509.KeyUsageDataEncipherment,
	"keyAgreement":     x509.KeyUsageKeyAgreement,
	"keyCertSign":      x509.KeyUsageCertSign,
	"cRLSign":          x509.KeyUsageCRLSign,
	"encipherOnly":     x509.KeyUsageEncipherOnly,
	"decipherOnly":     x509.KeyUsageDecipherOnly,
}

// keyUsageOrder lists the names in the order of their bits, for output.
var keyUsageOrder = []string{
	"digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
	"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly",
}

// IsKeyUsage reports whether name is a key usage Key Vault knows.
func IsKeyUsage(name string) bool {
	_, ok := keyUsageBits[name]
	return ok
}

// KeyUsageNames returns the Key Vault names of the bits set in ku.
func KeyUsageNames(ku x509.KeyUsage) []string {
	var out []string
	for _, n := range keyUsageOrder {
		if ku&keyUsageBits[n] != 0 {
			out = append(out, n)
		}
	}
	return out
}

// ParseOID parses a dotted object identifier such as 1.3.6.1.5.5.7.3.1.
func ParseOID(s string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("%q is not a dotted object identifier such as 1.3.6.1.5.5.7.3.1", s)
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (len(p) > 1 && p[0] == '0') {
			return nil, fmt.Errorf("%q is not a dotted object identifier such as 1.3.6.1.5.5.7.3.1", s)
		}
		oid[i] = n
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, fmt.Errorf("%q is not a valid object identifier", s)
	}
	return oid, nil
}

// Validate checks p and returns an error naming the first bad field with
// Key Vault's field names (subject, sans.dns_names[0], ekus[1], ...).
func (p *X509Props) Validate() error {
	if _, err := ParseSubject(p.Subject); err != nil {
		return fmt.Errorf("subject: %w", err)
	}
	for i, d := range p.DNSNames {
		if !validDNSName(d) {
			return fmt.Errorf("sans.dns_names[%d]: %q is not a DNS name", i, short(d))
		}
	}
	for i, e := range p.Emails {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
			return fmt.Errorf("sans.emails[%d]: %q is not an email address", i, short(e))
		}
	}
	for i, ip := range p.IPAddresses {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("sans.ipAddresses[%d]: %q is not an IPv4 or IPv6 address", i, short(ip))
		}
	}
	for i, u := range p.URIs {
		if pu, err := url.Parse(u); err != nil || pu.Scheme == "" {
			return fmt.Errorf("sans.uris[%d]: %q is not an absolute URI", i, short(u))
		}
	}
	for i, e := range p.EKUs {
		if _, err := ParseOID(e); err != nil {
			return fmt.Errorf("ekus[%d]: %w", i, err)
		}
	}
	for i, k := range p.KeyUsage {
		if !IsKeyUsage(k) {
			return fmt.Errorf("key_usage[%d]: %q is not one of %s", i, short(k), strings.Join(keyUsageOrder, ", "))
		}
	}
	if p.ValidityMonths < 1 || p.ValidityMonths > 1200 {
		return fmt.Errorf("validity_months: %d is out of range; give 1 to 1200", p.ValidityMonths)
	}
	if p.Subject == "" && len(p.DNSNames)+len(p.Emails)+len(p.IPAddresses)+len(p.URIs) == 0 {
		return errors.New("subject: give a subject or at least one subject alternative name")
	}
	return nil
}

func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i, label := range strings.Split(s, ".") {
		if label == "*" && i == 0 {
			continue
		}
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func short(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// Template makes the certificate template for p, valid from five minutes
// before now until p.ValidityMonths months after, with a fresh random
// serial number.
func (p *X509Props) Template(now time.Time) (*x509.Certificate, error) {
	subject, err := ParseSubject(p.Subject)
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	t := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      subject,
		// Five minutes back, so that clients whose clocks lag the vault's
		// a little accept a certificate as soon as it is made.
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.AddDate(0, p.ValidityMonths, 0),
		DNSNames:              p.DNSNames,
		EmailAddresses:        p.Emails,
		BasicConstraintsValid: true,
	}
	for _, ip := range p.IPAddresses {
		t.IPAddresses = append(t.IPAddresses, net.ParseIP(ip))
	}
	for _, u := range p.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("sans.uris: %q is not a URI", short(u))
		}
		t.URIs = append(t.URIs, pu)
	}
	for _, k := range p.KeyUsage {
		t.KeyUsage |= keyUsageBits[k]
	}
	for _, e := range p.EKUs {
		oid, err := ParseOID(e)
		if err != nil {
			return nil, fmt.Errorf("ekus: %w", err)
		}
		t.UnknownExtKeyUsage = append(t.UnknownExtKeyUsage, oid)
	}
	return t, nil
}

// SelfSign signs template with key, the key of the certificate itself,
// and returns the certificate.
func SelfSign(template *x509.Certificate, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// CreateCSR makes a PKCS#10 request, signed by key, for the subject, the
// alternative names, the key usage and the EKUs of template. It returns
// the request's DER.
func CreateCSR(template *x509.Certificate, key crypto.Signer) ([]byte, error) {
	req := &x509.CertificateRequest{
		Subject:        template.Subject,
		DNSNames:       template.DNSNames,
		EmailAddresses: template.EmailAddresses,
		IPAddresses:    template.IPAddresses,
		URIs:           template.URIs,
	}
	exts, err := requestedExtensions(template)
	if err != nil {
		return nil, err
	}
	req.ExtraExtensions = exts
	der, err := x509.CreateCertificateRequest(rand.Reader, req, key)
	if err != nil {
		return nil, fmt.Errorf("signing CSR: %w", err)
	}
	return der, nil
}

var (
	oidKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
)

// requestedExtensions encodes key usage and EKUs for a CSR, so the CA
// that signs it sees what the policy asks for.
func requestedExtensions(t *x509.Certificate) ([]pkix.Extension, error) {
	var exts []pkix.Extension
	if t.KeyUsage != 0 {
		var bits asn1.BitString
		bits.Bytes = make([]byte, 2)
		for i := 0; i < 9; i++ {
			if t.KeyUsage&(1<<i) != 0 {
				bits.Bytes[i/8] |= 0x80 >> (i % 8)
				bits.BitLength = i + 1
			}
		}
		if bits.BitLength <= 8 {
			bits.Bytes = bits.Bytes[:1]
		}
		v, err := asn1.Marshal(bits)
		if err != nil {
			return nil, fmt.Errorf("encoding key usage: %w", err)
		}
		exts = append(exts, pkix.Extension{Id: oidKeyUsage, Critical: true, Value: v})
	}
	if len(t.UnknownExtKeyUsage) > 0 {
		v, err := asn1.Marshal(t.UnknownExtKeyUsage)
		if err != nil {
			return nil, fmt.Errorf("encoding extended key usage: %w", err)
		}
		exts = append(exts, pkix.Extension{Id: oidExtKeyUsage, Value: v})
	}
	return exts, nil
}
