package pki

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"strings"
)

// oidEmailAddress is PKCS#9 emailAddress, written E= in Windows' and Key
// Vault's subject strings.
var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// ParseSubject parses a distinguished name as Key Vault policies write it,
// "CN=www.example.com, O=Example, C=US", into a pkix.Name. Attributes are
// separated by commas or semicolons; a value may be quoted or escape a
// separator with a backslash. An empty string is an empty name.
func ParseSubject(s string) (pkix.Name, error) {
	var name pkix.Name
	parts, err := splitDN(s)
	if err != nil {
		return name, err
	}
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return name, fmt.Errorf("%q is not ATTRIBUTE=value", short(p))
		}
		if v == "" {
			return name, fmt.Errorf("%s has an empty value", k)
		}
		if err := setAttribute(&name, k, unquote(v)); err != nil {
			return name, err
		}
	}
	return name, nil
}

func setAttribute(n *pkix.Name, k, v string) error {
	switch strings.ToUpper(k) {
	case "CN":
		if n.CommonName != "" {
			return fmt.Errorf("attribute CN is given twice")
		}
		n.CommonName = v
	case "O":
		n.Organization = append(n.Organization, v)
	case "OU":
		n.OrganizationalUnit = append(n.OrganizationalUnit, v)
	case "C":
		if len(v) != 2 {
			return fmt.Errorf("country (C) must be a two-letter code, not %q", short(v))
		}
		n.Country = append(n.Country, v)
	case "L":
		n.Locality = append(n.Locality, v)
	case "ST", "S":
		n.Province = append(n.Province, v)
	case "STREET":
		n.StreetAddress = append(n.StreetAddress, v)
	case "POSTALCODE":
		n.PostalCode = append(n.PostalCode, v)
	case "SERIALNUMBER":
		n.SerialNumber = v
	case "E", "EMAIL", "EMAILADDRESS":
		n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{Type: oidEmailAddress, Value: v})
	case "DC":
		n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{
			Type: asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}, Value: v})
	default:
		return fmt.Errorf("attribute %q is not one of CN, O, OU, C, L, ST, STREET, POSTALCODE, SERIALNUMBER, E, DC", short(k))
	}
	return nil
}

// splitDN splits at unescaped, unquoted commas and semicolons.
func splitDN(s string) ([]string, error) {
	var (
		parts  []string
		cur    strings.Builder
		quoted bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			cur.WriteByte(c)
			cur.WriteByte(s[i+1])
			i++
		case c == '"':
			quoted = !quoted
			cur.WriteByte(c)
		case (c == ',' || c == ';') && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote")
	}
	if strings.TrimSpace(cur.String()) != "" || len(parts) > 0 {
		parts = append(parts, cur.String())
	}
	return parts, nil
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
